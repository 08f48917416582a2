"""Calibration: how far predicted probabilities are from observed frequencies (ECE, reliability bins), and
temperature scaling (Guo et al. 2017), fitted on validation and applied by every backend.

Temperature scaling divides the logits by one number T > 0 chosen to minimise the validation negative
log-likelihood. It never changes a single-label argmax (multi-label thresholds are tuned on the scaled
probabilities). ``bake`` folds 1/T into the output layer's weights and bias, which gives exactly
``logits / T``: every backend (PyTorch, ONNX, the service, plain ``transformers`` and its ``pipeline``)
then predicts calibrated probabilities without knowing about it; bertcls.json records T.
"""

from __future__ import annotations

import numpy as np

from bertcls.core import metrics

N_BINS = 15  # Guo et al.'s choice; equal-width confidence bins
T_RANGE = (0.05, 20.0)


def reliability(probs: np.ndarray, y: np.ndarray, multi: bool, n_bins: int = N_BINS) -> dict:
    """Expected calibration error and the reliability bins. Single-label: the top label's confidence
    against whether it was right (``y``: class ids, -1 = a label the model does not know, left out).
    Multi-label: every (text, label) probability against whether the label is present."""
    if multi:
        conf, hit = probs.ravel(), y.ravel().astype(float)
    else:
        keep = y >= 0
        probs, y = probs[keep], y[keep]
        conf, hit = probs.max(axis=1), (probs.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        inside = which == b
        n = int(inside.sum())
        if not n:
            continue
        c, a = float(conf[inside].mean()), float(hit[inside].mean())
        ece += n / len(conf) * abs(a - c)
        bins.append(
            {"low": float(edges[b]), "high": float(edges[b + 1]), "n": n, "confidence": c, "accuracy": a}
        )
    return {"ece": float(ece), "bins": bins, "n": int(len(conf))}


def nll(logits: np.ndarray, y: np.ndarray, multi: bool) -> float:
    return metrics.bce(logits, y.astype(np.float32)) if multi else metrics.cross_entropy(logits, y)


def fit_temperature(logits: np.ndarray, y: np.ndarray, multi: bool) -> float:
    """The T in ``T_RANGE`` minimising validation NLL of ``logits / T`` (scipy's bounded Brent search on
    log T: one smooth parameter, no gradient code needed). Single-label rows with y = -1 are left out."""
    from scipy.optimize import minimize_scalar

    if not multi:
        keep = y >= 0
        logits, y = logits[keep], y[keep]
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    res = minimize_scalar(lambda s: nll(logits / np.exp(s), y, multi), bounds=(lo, hi), method="bounded")
    t = float(np.exp(res.x))
    # never worse than no scaling on the data it was fitted on (a flat objective can stop anywhere)
    return t if nll(logits / t, y, multi) <= nll(logits, y, multi) else 1.0


def output_layer(model):
    """The linear layer that produces the logits (BERT: ``classifier``; RoBERTa-style heads:
    ``classifier.out_proj``), or None when the head has another shape."""
    import torch

    head = getattr(model, "classifier", None)
    if isinstance(head, torch.nn.Linear):
        return head
    out = getattr(head, "out_proj", None)
    return out if isinstance(out, torch.nn.Linear) else None


def bake(model, temperature: float) -> None:
    """Divide the output layer's weight and bias by ``temperature``: the model's logits become logits / T."""
    import torch

    layer = output_layer(model)
    with torch.no_grad():
        layer.weight.div_(temperature)
        if layer.bias is not None:
            layer.bias.div_(temperature)
