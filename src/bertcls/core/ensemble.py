"""The BERT + TF-IDF ensemble: how the two models' probabilities become one, fitted on validation.

- ``stack`` (default): a logistic regression on both models' log-probabilities (multi-label: per label, on
  the two logits), fitted on the validation split. It learns how far to trust each model and rescales an
  over-confident one, which a fixed mix cannot. Measured (README, "Baselines"): on ChnSentiCorp with a
  BERT 3.4 points below the TF-IDF line, the probability mix could only follow the baseline (weight 0.84,
  test 0.9055 against the baseline's 0.9060), while the stacker gained on it.
- ``weight``: ``(1 - w) * BERT + w * TF-IDF`` probabilities, ``w`` from 0, 0.05, ..., 1 chosen on
  validation by the run's metric (ties to the lower validation loss); on validation never worse than the
  better of the two. Also the fallback when validation lacks a class the stacker would need.

Parameters are a few numbers, kept in bertcls.json (``ensemble``) and applied here by hand: nothing to
unpickle, and the same arithmetic in every backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bertcls.core import metrics
from bertcls.core.data import TextData
from bertcls.core.scoring import as_logits, label_targets, score_logits

METHODS = ("stack", "weight")
WEIGHT_GRID = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 21))
STACK_C = 1.0  # the stacker's regularisation: a handful of inputs, hundreds of validation rows
FLOOR = 1e-6  # log-probabilities are floored here so one over-confident zero does not dominate


@dataclass
class Ensemble:
    method: str
    weight: float | None = None  # weight: the baseline's share
    coef: list | None = None  # stack: (classes, 2 * classes) single-label; (labels, 2) multi-label
    intercept: list | None = None
    thresholds: list | None = None  # multi-label: tuned on validation on the combined probabilities
    threshold: float | None = None  # binary --tune-threshold: the positive class's, on the combined ones

    def decision(self, positive: int | None):
        """The binary decision rule for class ``positive`` (None: argmax)."""
        from bertcls.core.decision import Decision

        return None if self.threshold is None or positive is None else Decision(positive, self.threshold)

    def combine(self, bert: np.ndarray, base: np.ndarray, multi: bool) -> np.ndarray:
        if self.method == "weight":
            return (1.0 - self.weight) * bert + self.weight * base
        coef, b = np.asarray(self.coef), np.asarray(self.intercept)
        if multi:
            z = coef[:, 0] * metrics.logit(bert, FLOOR) + coef[:, 1] * metrics.logit(base, FLOOR) + b
            return metrics.sigmoid(z)
        return metrics.softmax(_log_features(bert, base) @ coef.T + b)

    def describe(self) -> str:
        if self.method == "weight":
            return f"baseline weight {self.weight}"
        return "stacked: logistic regression on both models' log-probabilities"

    def as_meta(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, saved: dict) -> Ensemble:
        keep = {k: saved.get(k) for k in ("weight", "coef", "intercept", "thresholds", "threshold")}
        return cls(method=saved.get("method", "weight"), **keep)


def _log_features(bert: np.ndarray, base: np.ndarray) -> np.ndarray:
    return np.concatenate([np.log(np.clip(bert, FLOOR, 1.0)), np.log(np.clip(base, FLOOR, 1.0))], axis=1)


def fit_weight(bert, base, validation: TextData, labels: list[str], multi: bool, metric: str) -> Ensemble:
    best: tuple | None = None
    sign = -1.0 if metric in metrics.LOWER_IS_BETTER else 1.0
    for w in WEIGHT_GRID:
        ens = Ensemble("weight", weight=w)
        m = score_logits(
            as_logits(ens.combine(bert, base, multi), multi), validation, labels, multi, tune=multi
        )
        if m.get(metric) is None:
            continue
        key = (round(sign * m[metric], 10), -m.get("loss", 0.0))
        if best is None or key > best[0]:
            best = (key, ens)
    assert best is not None
    return best[1]


def fit_stack(bert, base, validation: TextData, labels: list[str], multi: bool) -> Ensemble | None:
    """The stacker, or None when validation lacks a class (single-label) it would have to predict."""
    from sklearn.linear_model import LogisticRegression

    if multi:
        y = np.stack(label_targets(validation, labels, True)).astype(int)
        coef, intercept = [], []
        for j in range(len(labels)):
            if y[:, j].min() == y[:, j].max():  # constant on validation: average the two logits
                coef.append([0.5, 0.5])
                intercept.append(0.0)
                continue
            x = np.c_[metrics.logit(bert[:, j], FLOOR), metrics.logit(base[:, j], FLOOR)]
            lr = LogisticRegression(C=STACK_C, max_iter=1000).fit(x, y[:, j])
            coef.append(lr.coef_[0].tolist())
            intercept.append(float(lr.intercept_[0]))
        return Ensemble("stack", coef=coef, intercept=intercept)
    ids = np.asarray(label_targets(validation, labels, False))
    known = ids >= 0
    if len(set(ids[known].tolist())) < len(labels):
        return None
    lr = LogisticRegression(C=STACK_C, max_iter=1000).fit(_log_features(bert, base)[known], ids[known])
    coef, intercept = lr.coef_, lr.intercept_
    if len(labels) == 2:  # sklearn's binary form (one row for class 1) as two softmax rows
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    return Ensemble("stack", coef=coef.tolist(), intercept=intercept.tolist())


def fit(
    bert: np.ndarray,
    base: np.ndarray,
    validation: TextData,
    labels: list[str],
    multi: bool,
    metric: str,
    method: str = "stack",
    positive: int | None = None,
    tune_threshold: bool = False,
) -> tuple[Ensemble, dict]:
    """The ensemble and its validation metrics (multi-label: at thresholds tuned on validation; binary with
    ``tune_threshold``: at class ``positive``'s threshold tuned on the combined validation probabilities)."""
    ens = fit_stack(bert, base, validation, labels, multi) if method == "stack" else None
    if ens is None:
        ens = fit_weight(bert, base, validation, labels, multi, metric)
    mixed = ens.combine(bert, base, multi)
    if tune_threshold and positive is not None:
        from bertcls.core.decision import tune

        ids = np.asarray(label_targets(validation, labels, False))
        ens.threshold = tune(mixed, ids, positive, metric).threshold
    decision = ens.decision(positive)
    m = score_logits(
        as_logits(mixed, multi), validation, labels, multi, tune=multi, decision=decision, positive=positive
    )
    ens.thresholds = m.pop("thresholds", None)
    return ens, m
