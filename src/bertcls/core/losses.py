"""Training losses: cross-entropy / BCE, and focal loss (Lin et al. 2017) for imbalanced data.

Focal loss is written here because torch has none (torchvision's ``sigmoid_focal_loss`` covers only the
sigmoid case and torchvision is not a dependency). Both forms reduce exactly to torch's own losses at
gamma 0, weights included (tested), so ``--loss focal --focal-gamma 0`` is plain cross-entropy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bertcls.core.errors import UserError

LOSSES = ("ce", "focal")


class FocalLoss(torch.nn.Module):
    """Single-label: ``-w[y] * (1 - p_y)^gamma * log p_y``, averaged like ``CrossEntropyLoss(weight=w)``
    (divided by the sum of the rows' weights). Multi-label: per label, BCE with ``pos_weight`` scaled by
    ``(1 - p_t)^gamma`` where ``p_t`` is the probability of the true value, averaged over all cells like
    ``BCEWithLogitsLoss``."""

    def __init__(self, gamma: float, multi_label: bool, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma = float(gamma)
        self.multi_label = multi_label
        self.weight = weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.weight, reduction="none")
            p = torch.sigmoid(logits)
            p_t = p * target + (1 - p) * (1 - target)
            return ((1 - p_t).pow(self.gamma) * bce).mean()
        logp = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
        scale = (1 - logp.exp()).pow(self.gamma)
        w = self.weight[target] if self.weight is not None else torch.ones_like(logp)
        return -(w * scale * logp).sum() / w.sum()


def make_loss(kind: str, multi_label: bool, weight: torch.Tensor | None, gamma: float) -> torch.nn.Module:
    """The training loss for ``--loss`` (``weight``: per-class weights, or BCE ``pos_weight`` per label)."""
    if kind == "focal":
        return FocalLoss(gamma, multi_label, weight)
    if multi_label:
        return torch.nn.BCEWithLogitsLoss(pos_weight=weight)
    return torch.nn.CrossEntropyLoss(weight=weight)


def parse_class_weights(text: str) -> str | dict[str, float]:
    """--class-weights: "none", "balanced", or LABEL=W,... as a mapping (one-line error otherwise)."""
    if text in ("none", "balanced"):
        return text
    out: dict[str, float] = {}
    for item in text.split(","):
        name, eq, value = item.strip().rpartition("=")
        try:
            w = float(value)
        except ValueError:
            w = -1.0
        if not eq or not name or not (w > 0 and np.isfinite(w)) or name in out:
            raise UserError(
                f"--class-weights={text!r}: {item.strip()!r} is not LABEL=WEIGHT with a positive weight "
                f"(each label once); use none, balanced or a mapping such as spam=5,ham=1"
            )
        out[name] = w
    return out


def class_weight_tensor(cfg, targets: list, labels: list[str]) -> torch.Tensor | None:
    """The loss weights --class-weights asks for: per class, or each label's BCE pos_weight."""
    weights = parse_class_weights(cfg.class_weights)
    if weights == "none":
        return None
    if isinstance(weights, dict):
        return torch.tensor([weights.get(lab, 1.0) for lab in labels], dtype=torch.float32)
    n_labels, multi = len(labels), cfg.multi_label
    if multi:
        pos = np.sum(np.stack(targets), axis=0)
        neg = len(targets) - pos
        return torch.tensor(neg / np.maximum(pos, 1), dtype=torch.float32)  # BCE pos_weight
    counts = np.bincount(np.asarray(targets), minlength=n_labels).astype(np.float64)
    return torch.tensor(len(targets) / (n_labels * np.maximum(counts, 1)), dtype=torch.float32)
