from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from bertcls.core import metrics


def test_ranking_scores_per_label_and_means():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    probs = np.array([[0.9, 0.2, 0.1], [0.1, 0.8, 0.2], [0.7, 0.6, 0.3], [0.2, 0.1, 0.4]])
    out = metrics.ranking_scores(y, probs)
    assert out["per_label"]["ap"][:2] == [1.0, 1.0]
    assert out["per_label"]["ap"][2] is None and out["per_label"]["roc_auc"][2] is None  # no positive
    assert out["ap_macro"] == 1.0 and out["roc_auc_macro"] == 1.0
    assert out["ap_micro"] == pytest.approx(average_precision_score(y.ravel(), probs.ravel()))


def test_ranking_scores_see_what_f1_at_half_misses():
    # every probability under 0.5: F1 at 0.5 is 0, but the ranking is perfect
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    probs = np.array([[0.3, 0.1], [0.1, 0.2], [0.4, 0.05], [0.2, 0.3]])
    logits = np.log(probs / (1 - probs))
    out = metrics.multi_label(y, (metrics.sigmoid(logits) >= 0.5).astype(int), ["a", "b"], logits)
    assert out["f1_micro"] == 0.0
    assert out["ap_macro"] == pytest.approx(1.0)
    assert out["per_label"]["a"]["roc_auc"] == pytest.approx(1.0)
