"""Scoring a classifier on labelled data: label targets, metrics of a model, the scalar view of them.

Shared by `train` (each evaluation and the final report) and `evaluate`."""

from __future__ import annotations

from collections import Counter

import numpy as np

from bertcls.core import metrics
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
) -> tuple[dict, np.ndarray]:
    """Metrics of ``model`` on ``data`` (returns the metrics and the raw logits). Multi-label: at
    ``thresholds`` (default 0.5), or with ``tune`` at thresholds tuned on ``data`` itself, which is what
    the saved model will use when ``data`` is validation (listed under "thresholds"). Rows of ``enc`` that
    are windows of one text (``--long-text chunks``) are pooled into that text's logits."""
    from bertcls.core.batching import batched_logits
    from bertcls.core.longtext import pool

    logits = pool(batched_logits(model, enc, batch_size, pad_id), enc, len(data), pooling)
    return score_logits(logits, data, labels, multi, thresholds, tune), logits


def score_logits(
    logits: np.ndarray,
    data: TextData,
    labels: list[str],
    multi: bool,
    thresholds: np.ndarray | None = None,
    tune: bool = False,
) -> dict:
    """:func:`score` on logits already computed (or on probabilities through :func:`as_logits`): the one
    place BERT's, the baseline's and the ensemble's figures are computed, so they compare like for like."""
    if multi:
        y = np.stack(label_targets(data, labels, True)).astype(int)
        probs = metrics.sigmoid(logits)
        if tune:
            thresholds = np.asarray(metrics.tune_thresholds(probs, y))
        t = thresholds if thresholds is not None else np.full(len(labels), 0.5)
        out = metrics.multi_label(y, (probs >= t).astype(int), labels, logits)
        if tune:
            out["thresholds"] = [float(x) for x in t]
        return out
    pred = [labels[i] for i in logits.argmax(axis=1)]
    ids = np.asarray(label_targets(data, labels, False))
    return metrics.single_label(data.labels, pred, labels, logits, ids if (ids >= 0).all() else None)


def as_logits(probs: np.ndarray, multi: bool) -> np.ndarray:
    """Probabilities -> logits whose softmax (sigmoid for multi-label) gives them back."""
    return metrics.logit(probs) if multi else np.log(np.clip(probs, 1e-12, 1.0))


def scalar(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, (int, float))}


def split_scalars(result: dict) -> dict:
    """The validation and test metrics of a result cut to numbers, for bertcls.json."""
    return {s: scalar(result[s]) for s in ("validation", "test") if s in result}


def label_summary(data: TextData) -> dict[str, int]:
    return dict(Counter(label_counts(data)).most_common())
