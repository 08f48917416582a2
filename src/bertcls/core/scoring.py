"""Scoring a classifier on labelled data: label targets, metrics of a model, the scalar view of them.

Shared by `train` (each evaluation and the final report) and `evaluate`."""

from __future__ import annotations

from collections import Counter

import numpy as np

from bertcls.core import metrics
from bertcls.core.calibration import reliability
from bertcls.core.data import TextData, label_counts


def label_targets(data: TextData, labels: list[str], multi: bool) -> list:
    """Class ids (single-label; -1 for a label the model does not know) or 0/1 vectors (multi-label)."""
    index = {lab: i for i, lab in enumerate(labels)}
    if multi:
        out = []
        for labs in data.labels:
            v = np.zeros(len(labels), dtype=np.float32)
            v[[index[x] for x in labs if x in index]] = 1
            out.append(v)
        return out
    return [index.get(lab, -1) for lab in data.labels]


def score(
    model,
    enc: list[dict],
    data: TextData,
    labels: list[str],
    multi: bool,
    batch_size: int,
    pad_id: int,
    thresholds: np.ndarray | None = None,
    tune: bool = False,
    pooling: str = "mean",
    decision=None,
    positive: int | None = None,
    shard: bool = False,
) -> tuple[dict, np.ndarray]:
    """Metrics of ``model`` on ``data`` (returns the metrics and the raw logits). ``shard``: every rank of
    a distributed run calls this and each computes a share of the logits (``batching.sharded_logits``).
    Multi-label: at
    ``thresholds`` (default 0.5), or with ``tune`` at thresholds tuned on ``data`` itself, which is what
    the saved model will use when ``data`` is validation (listed under "thresholds"). Rows of ``enc`` that
    are windows of one text (``--long-text chunks``) are pooled into that text's logits."""
    logits = text_logits(model, enc, len(data), batch_size, pad_id, pooling, shard)
    return score_logits(logits, data, labels, multi, thresholds, tune, decision, positive), logits


def text_logits(
    model, enc: list[dict], n: int, batch_size: int, pad_id: int, pooling: str = "mean", shard: bool = False
) -> np.ndarray:
    """The logits of ``n`` texts from their encodings (windows of one text pooled into its logits);
    ``shard``: split across the ranks of a distributed run, as in :func:`score`."""
    from bertcls.core.batching import batched_logits, sharded_logits
    from bertcls.core.longtext import pool

    raw = (sharded_logits if shard else batched_logits)(model, enc, batch_size, pad_id)
    return pool(raw, enc, n, pooling)


def score_logits(
    logits: np.ndarray,
    data: TextData,
    labels: list[str],
    multi: bool,
    thresholds: np.ndarray | None = None,
    tune: bool = False,
    decision=None,
    positive: int | None = None,
) -> dict:
    """:func:`score` on logits already computed (or on probabilities through :func:`as_logits`): the one
    place BERT's, the baseline's and the ensemble's figures are computed, so they compare like for like.
    Single-label: ``decision`` (``core.decision.Decision``) replaces argmax for a binary task;
    ``positive`` is the class PR-AUC is reported for (default: the decision's, else the second label)."""
    if multi:
        y = np.stack(label_targets(data, labels, True)).astype(int)
        probs = metrics.sigmoid(logits)
        if tune:
            thresholds = np.asarray(metrics.tune_thresholds(probs, y))
        t = thresholds if thresholds is not None else np.full(len(labels), 0.5)
        out = metrics.multi_label(y, (probs >= t).astype(int), labels, logits)
        out["ece"] = reliability(probs, y, True)["ece"]
        if tune:
            out["thresholds"] = [float(x) for x in t]
        return out
    probs = metrics.softmax(logits)
    pred = [labels[i] for i in (decision.predict_ids(probs) if decision else logits.argmax(axis=1))]
    ids = np.asarray(label_targets(data, labels, False))
    out = metrics.single_label(data.labels, pred, labels, logits, ids if (ids >= 0).all() else None)
    if decision is not None:
        positive = decision.positive
    return out | probability_scores(probs, ids, labels, positive)


def probability_scores(probs: np.ndarray, ids: np.ndarray, labels: list[str], positive: int | None) -> dict:
    """Single-label scores of the probabilities rather than the decisions: expected calibration error,
    and for a binary task the positive class's PR-AUC (average precision) and ROC-AUC."""
    out: dict = {"ece": reliability(probs, ids, False)["ece"]}
    known = ids >= 0
    if len(labels) != 2 or not known.any():
        return out
    from sklearn.metrics import average_precision_score, roc_auc_score

    pos = 1 if positive is None else positive
    y = ids[known] == pos
    out["positive_label"] = labels[pos]
    if 0 < y.sum() < len(y):
        out["pr_auc"] = float(average_precision_score(y, probs[known, pos]))
        out["roc_auc"] = float(roc_auc_score(y, probs[known, pos]))
    return out


def as_logits(probs: np.ndarray, multi: bool) -> np.ndarray:
    """Probabilities -> logits whose softmax (sigmoid for multi-label) gives them back."""
    return metrics.logit(probs) if multi else np.log(np.clip(probs, 1e-12, 1.0))


def scalar(m: dict) -> dict:
    """The numbers of a metrics dict (not the nested reports, labels or flags)."""
    return {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def split_scalars(result: dict) -> dict:
    """The validation and test metrics of a result cut to numbers, for bertcls.json."""
    return {s: scalar(result[s]) for s in ("validation", "test") if s in result}


def label_summary(data: TextData) -> dict[str, int]:
    return dict(Counter(label_counts(data)).most_common())
