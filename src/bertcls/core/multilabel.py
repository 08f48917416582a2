"""Multi-label specifics of ``bertcls train``: the head starts at the label priors, and a model that
learned nothing beyond them is named as such.

Why (measured, README "Multi-label"): with a zero-initialised head bias every label starts at
probability 0.5 while most labels are rare, so the first thousand steps of BCE mostly push every
logit down together; on a 28-label set with rare labels MiniLM-L6 collapsed to constant outputs (the
spread of its logits across texts was 0.000 after 2 epochs) and only the base rates were learned.
Starting each label's bias at log(p / (1 - p)) of its training frequency removes that first phase
(RetinaNet's prior initialisation, Lin et al. 2017), so the gradient goes into telling texts apart.
"""

from __future__ import annotations

import numpy as np

from bertcls.core import metrics

# Keep the prior of a label seen in every (or no) training row finite.
PRIOR_CLIP = 1e-4


def label_priors(targets: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Fraction of training rows carrying each label."""
    y = np.asarray(np.stack(targets) if isinstance(targets, list) else targets, dtype=np.float64)
    return y.mean(axis=0)


def prior_logits(priors: np.ndarray) -> np.ndarray:
    return metrics.logit(priors, PRIOR_CLIP)


def init_head_to_priors(model, priors: np.ndarray) -> bool:
    """Set the classification head's bias to the prior logits (weights stay as initialised, small), so
    before training the model predicts each label's base rate. Returns False for a model without a
    linear ``classifier`` head (left as it is)."""
    import torch

    head = getattr(model, "classifier", None)
    bias = getattr(head, "bias", None)
    if bias is None or bias.shape[0] != len(priors):
        return False
    with torch.no_grad():
        bias.copy_(torch.as_tensor(prior_logits(priors), dtype=bias.dtype))
    return True


def prior_predictor_scores(y_val: np.ndarray, priors: np.ndarray, labels: list[str]) -> dict:
    """Validation scores of the predictor that knows only the training label frequencies (every text
    gets the same probabilities), with thresholds tuned on validation like the model's. A model that
    does not beat it has learned nothing from the texts."""
    probs = np.tile(priors, (len(y_val), 1))
    thresholds = np.asarray(metrics.tune_thresholds(probs, y_val))
    pred = (probs >= thresholds).astype(int)
    return metrics.multi_label(y_val, pred, labels, prior_logits(probs))


def unseparated_warning(probs: np.ndarray, labels: list[str], where: str) -> str | None:
    """One line naming the labels whose probability never reaches the lowest threshold on any text of
    ``where``: the model gives every text the same answer for them, so no threshold separates anything."""
    floor = float(min(metrics.THRESHOLD_GRID))
    flat = [lab for j, lab in enumerate(labels) if probs[:, j].max() < floor]
    if not flat:
        return None
    shown = ", ".join(flat[:10]) + (" ..." if len(flat) > 10 else "")
    return (
        f"{len(flat)} of {len(labels)} label(s) never reach probability {floor} on any {where}, "
        f"so no threshold separates them: {shown}; they need more examples or more training"
    )


def learning_checks(
    y_val: np.ndarray, probs: np.ndarray, priors: np.ndarray, labels: list[str], metric: str, model_m: dict
) -> tuple[dict, list[str]]:
    """The label-prior predictor's validation scores, and one-line warnings: when the model does not beat
    that predictor on ``metric``, and for labels it never separates."""
    prior_m = prior_predictor_scores(y_val, priors, labels)
    warnings = []
    ours, theirs = model_m.get(metric), prior_m.get(metric)
    if ours is not None and theirs is not None and not metrics.is_better(metric, ours, theirs):
        warnings.append(
            f"the model did not beat the label-prior predictor on validation ({metric} {ours:.4f} vs "
            f"{theirs:.4f}): it learned only the base rates; try more --epochs or a higher "
            f"--learning-rate, and check that the labels match the texts"
        )
    if flat := unseparated_warning(probs, labels, "validation text"):
        warnings.append(flat)
    return prior_m, warnings
