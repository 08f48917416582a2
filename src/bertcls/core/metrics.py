"""Classification metrics (scikit-learn; `evaluate.load` would need the hub) and threshold tuning."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SINGLE_LABEL_METRICS = (
    "accuracy",
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "loss",
)
MULTI_LABEL_METRICS = (
    "f1_micro",
    "f1_macro",
    "f1_samples",
    "subset_accuracy",
    "hamming_loss",
    "ap_macro",
    "ap_micro",
    "loss",
)
LOWER_IS_BETTER = {"loss", "hamming_loss"}
# Multi-label decision thresholds tried per label on validation.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def logit(probs: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """The inverse of sigmoid, with probabilities clipped to [eps, 1 - eps] so 0 and 1 stay finite."""
    p = np.clip(probs, eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    p = softmax(logits)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))


def bce(logits: np.ndarray, y: np.ndarray) -> float:
    # numerically stable log(1 + exp(-|x|)) form
    loss = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    return float(loss.mean())


def single_label(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
    logits: np.ndarray | None = None,
    label_ids: np.ndarray | None = None,
) -> dict:
    """All single-label scores. ``labels`` are the model's labels; true labels the model never saw in
    training are added to the report (they can only be wrong) and listed under ``unseen_labels``."""
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    known = list(labels)
    unseen = sorted(set(y_true) - set(known))
    all_labels = known + unseen
    out: dict = {"n": len(y_true), "accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=all_labels, average=avg, zero_division=0
        )
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
    if logits is not None and label_ids is not None and not unseen:
        out["loss"] = cross_entropy(logits, label_ids)
    report = classification_report(y_true, y_pred, labels=all_labels, output_dict=True, zero_division=0)
    out["per_class"] = {
        lab: {k: (float(v) if k != "support" else int(v)) for k, v in report[lab].items()}
        for lab in all_labels
    }
    out["confusion_matrix"] = {
        "labels": all_labels,
        "matrix": confusion_matrix(y_true, y_pred, labels=all_labels).tolist(),
    }
    if unseen:
        out["unseen_labels"] = {lab: int(sum(1 for t in y_true if t == lab)) for lab in unseen}
    return out


def multi_label(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], logits: np.ndarray | None = None
) -> dict:
    """Label-based (micro/macro/per label) and example-based (samples, subset accuracy, Hamming) scores."""
    from sklearn.metrics import (
        accuracy_score,
        hamming_loss,
        jaccard_score,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
    )

    out: dict = {
        "n": int(len(y_true)),
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
    }
    for avg in ("micro", "macro", "weighted", "samples"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
    out["jaccard_samples"] = float(jaccard_score(y_true, y_pred, average="samples", zero_division=0))
    ranking = {}
    if logits is not None:
        out["loss"] = bce(logits, y_true.astype(np.float32))
        ranking = ranking_scores(y_true, sigmoid(logits))
        out.update({k: v for k, v in ranking.items() if k != "per_label"})
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    # One 2x2 matrix per label ([[tn, fp], [fn, tp]]): a single matrix over label sets does not exist.
    cms = multilabel_confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    out["per_label"] = {
        lab: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1-score": float(f[i]),
            "support": int(s[i]),
            "tn": int(cms[i][0][0]),
            "fp": int(cms[i][0][1]),
            "fn": int(cms[i][1][0]),
            "tp": int(cms[i][1][1]),
        }
        | {k: v[i] for k, v in ranking.get("per_label", {}).items()}
        for i, lab in enumerate(labels)
    }
    return out


def ranking_scores(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Threshold-free multi-label scores: average precision (area under the PR curve) and ROC-AUC, per
    label and macro/micro. They show whether the model ranks a label's texts above the rest even where
    F1 at some threshold is 0. A label with no positive (or no negative) example has no AP/AUC: None,
    left out of the macro means."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = y_true.astype(int)
    ap: list[float | None] = []
    auc: list[float | None] = []
    for j in range(y.shape[1]):
        pos = int(y[:, j].sum())
        ap.append(float(average_precision_score(y[:, j], probs[:, j])) if pos else None)
        auc.append(float(roc_auc_score(y[:, j], probs[:, j])) if 0 < pos < len(y) else None)

    def mean(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return float(np.mean(kept)) if kept else None

    out: dict = {"ap_macro": mean(ap), "roc_auc_macro": mean(auc), "per_label": {"ap": ap, "roc_auc": auc}}
    if y.any():
        out["ap_micro"] = float(average_precision_score(y.ravel(), probs.ravel()))
    if 0 < y.sum() < y.size:
        out["roc_auc_micro"] = float(roc_auc_score(y.ravel(), probs.ravel()))
    return out


def tune_thresholds(probs: np.ndarray, y_true: np.ndarray, grid: np.ndarray | None = None) -> list[float]:
    """Per label, the threshold maximising that label's F1 on validation (0.5 where a label is absent)."""
    grid = THRESHOLD_GRID if grid is None else grid
    out = []
    for j in range(probs.shape[1]):
        t_true = y_true[:, j].astype(bool)
        if not t_true.any():
            out.append(0.5)
            continue
        best_t, best_f = 0.5, -1.0
        for t in grid:
            pred = probs[:, j] >= t
            tp = np.sum(pred & t_true)
            f1 = 2 * tp / max(1, pred.sum() + t_true.sum())
            if f1 > best_f + 1e-12:
                best_t, best_f = float(t), f1
        out.append(best_t)
    return out


def is_better(metric: str, new: float, best: float | None) -> bool:
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best
