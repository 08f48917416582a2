"""Binary decision threshold: predict the positive class when its probability reaches a threshold tuned
on validation (``train --tune-threshold``), instead of argmax (0.5). Like the multi-label thresholds it is
saved in bertcls.json and applied by ``TextClassifier.decide`` in every backend; plain ``transformers``
(argmax) does not know it, which the model card says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


@dataclass
class Decision:
    positive: int  # column of the positive class
    threshold: float

    def predict_ids(self, probs: np.ndarray) -> np.ndarray:
        other = 1 - self.positive
        return np.where(probs[:, self.positive] >= self.threshold, self.positive, other)

    @classmethod
    def from_meta(cls, meta: dict, threshold: float | None = None) -> Decision | None:
        """The rule bertcls.json describes (``threshold`` overrides the model's own: the ensemble's)."""
        threshold = meta.get("decision_threshold") if threshold is None else threshold
        positive = meta.get("positive_label")
        if threshold is None or positive not in meta["labels"]:
            return None
        return cls(meta["labels"].index(positive), float(threshold))


def positive_class(labels: list[str], train_ids: list[int], chosen: str | None) -> int:
    """``--positive-label``, else the rarer class in training (the one a threshold usually serves:
    spam, fraud, a defect), ties to the second label."""
    if chosen is not None:
        return labels.index(chosen)
    counts = np.bincount(np.asarray([i for i in train_ids if i >= 0]), minlength=2)
    return 0 if counts[0] < counts[1] else 1


def _metric(y: np.ndarray, pred: np.ndarray, metric: str) -> float:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if metric == "accuracy":
        return float(accuracy_score(y, pred))
    kind, avg = metric.rsplit("_", 1)
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=[0, 1], average=avg, zero_division=0)
    return float({"precision": p, "recall": r, "f1": f}[kind])


def tune(probs: np.ndarray, y: np.ndarray, positive: int, metric: str) -> Decision:
    """The threshold on ``GRID`` maximising ``metric`` on validation (``loss`` does not depend on the
    threshold: macro-F1 then). Ties go to the threshold closest to 0.5, so a flat stretch keeps argmax."""
    metric = "f1_macro" if metric == "loss" else metric
    keep = y >= 0
    probs, y = probs[keep], y[keep]
    best: tuple | None = None
    for t in GRID:
        d = Decision(positive, float(t))
        key = (round(_metric(y, d.predict_ids(probs), metric), 10), -abs(float(t) - 0.5))
        if best is None or key > best[0]:
            best = (key, d)
    assert best is not None
    return best[1]
