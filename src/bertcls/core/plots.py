"""Pictures next to the JSON: learning curves and confusion matrices (matplotlib, no display)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    from bertcls.core.io import atomic_open

    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")


def learning_curve(history: Sequence[dict], path: str | os.PathLike, metric: str, title: str = "") -> None:
    """Left: training (and validation) loss by step. Right: validation ``metric`` by step."""
    plt = _plt()
    train = [h for h in history if h.get("type") == "train"]
    evals = [h for h in history if h.get("type") == "eval"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    if train:
        ax.plot([h["step"] for h in train], [h["loss"] for h in train], label="train loss", alpha=0.8)
    if evals and "loss" in evals[0]:
        ax.plot([h["step"] for h in evals], [h["loss"] for h in evals], "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[1]
    keys = [metric] + [k for k in ("accuracy", "f1_macro") if k != metric]
    for k in keys:
        pts = [(h["step"], h[k]) for h in evals if k in h]
        if pts:
            ax.plot(*zip(*pts), "o-", label=f"validation {k}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("score")
    ax.legend()
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)


def curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    ylabel: str,
    title: str = "",
    panels: dict[str, list[str]] | None = None,
) -> None:
    """Generic multi-panel line plot: ``panels`` maps a panel title to series names."""
    plt = _plt()
    panels = panels or {ylabel: list(series)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (ptitle, names) in zip(axes[0], panels.items()):
        for name in names:
            if name in series and len(series[name][0]):
                ax.plot(series[name][0], series[name][1], label=name)
        ax.set_title(ptitle)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)


def _matrix_cells(ax, m: np.ndarray, counts: bool = True):
    """Confusion-matrix cells: colour = share of the true class (row-normalised), text = the count."""
    row_sums = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, row_sums, out=np.zeros_like(m, dtype=float), where=row_sums > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if counts:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(
                    j,
                    i,
                    str(int(m[i, j])),
                    ha="center",
                    va="center",
                    color="white" if norm[i, j] > 0.5 else "black",
                    fontsize=8,
                )
    return im


def confusion_matrix(
    matrix: np.ndarray, labels: Sequence[str], path: str | os.PathLike, title: str = ""
) -> None:
    plt = _plt()
    m = np.asarray(matrix)
    n = len(labels)
    size = max(4.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = _matrix_cells(ax, m, counts=n <= 30)
    ax.set_xticks(range(n), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, label="fraction of true class")
    ax.set_title(title or "confusion matrix")
    _save(fig, path)
    plt.close(fig)


def multilabel_confusion(
    per_label: dict[str, dict], path: str | os.PathLike, title: str = "", max_labels: int = 48
) -> None:
    """Multi-label: one 2x2 matrix per label (true no/yes x predicted no/yes), rows normalised, counts shown.

    Labels beyond ``max_labels`` (by support) are left out of the picture; metrics.json has them all.
    """
    plt = _plt()
    items = sorted(per_label.items(), key=lambda kv: -kv[1]["support"])[:max_labels]
    n = len(items)
    cols = min(6, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.3 * rows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (label, v) in zip(axes.flat, items):
        _matrix_cells(ax, np.array([[v["tn"], v["fp"]], [v["fn"], v["tp"]]]))
        ax.set_xticks([0, 1], labels=["no", "yes"], fontsize=7)
        ax.set_yticks([0, 1], labels=["no", "yes"], fontsize=7)
        ax.set_title(f"{label} (F1 {v['f1-score']:.2f})", fontsize=8)
    fig.supxlabel("predicted", fontsize=9)
    fig.supylabel("true", fontsize=9)
    fig.suptitle(title or "confusion matrix per label", fontsize=10)
    _save(fig, path)
    plt.close(fig)


def pretraining_curves(history: list[dict], path: str | os.PathLike, title: str) -> None:
    """`bertcls pretrain`: MLM/NSP losses and accuracies, train and held-out, against the step."""
    series = {}
    for kind in ("train", "eval"):
        rows = [h for h in history if h["type"] == kind]
        for key, name in (
            ("mlm_loss", "MLM loss"),
            ("nsp_loss", "NSP loss"),
            ("mlm_accuracy", "MLM accuracy"),
            ("nsp_accuracy", "NSP accuracy"),
        ):
            series[f"{kind} {name}"] = ([h["step"] for h in rows], [h[key] for h in rows])
    panels = {
        "MLM loss": ["train MLM loss", "eval MLM loss"],
        "NSP loss": ["train NSP loss", "eval NSP loss"],
        "accuracy": ["train MLM accuracy", "eval MLM accuracy", "train NSP accuracy", "eval NSP accuracy"],
    }
    curves(series, path, "value", title, panels)


def confusion(m: dict, path: str | os.PathLike, title: str = "") -> None:
    """The confusion plot of one split's metrics: one matrix (single-label) or one 2x2 per label."""
    if "confusion_matrix" in m:
        cm = m["confusion_matrix"]
        confusion_matrix(np.asarray(cm["matrix"]), cm["labels"], path, title)
    else:
        multilabel_confusion(m["per_label"], path, title)


def word_bars(table: dict[str, list[tuple[str, float, int]]], path: str | os.PathLike) -> None:
    """One horizontal bar chart per label: the words with the largest mean attribution towards it."""
    plt = _plt()
    labels = list(table)
    fig, axes = plt.subplots(1, len(labels), figsize=(4.5 * len(labels), 5), squeeze=False)
    for ax, label in zip(axes[0], labels):
        rows = table[label][::-1]
        ax.barh([r[0] for r in rows], [r[1] for r in rows], color="#2e9e57")
        ax.set_title(f"towards {label}")
        ax.set_xlabel("mean attribution")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def reliability(
    panels: Sequence[tuple[str, dict]], path: str | os.PathLike, title: str = "", multi: bool = False
) -> None:
    """Reliability diagram: per confidence bin, observed accuracy against mean confidence (the diagonal is
    perfect calibration), one line per ``(name, core.calibration.reliability(...))`` panel, e.g. before
    and after temperature scaling; ECE in the legend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfectly calibrated")
    for name, r in panels:
        bins = r["bins"]
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            "o-",
            label=f"{name}: ECE {r['ece']:.4f}",
        )
    x = "predicted probability" if multi else "confidence (top label's probability)"
    _square(plt, fig, ax, path, (x, "observed frequency" if multi else "accuracy"), 1.0, "upper left", title)


def pr_curve(
    y: np.ndarray,
    scores: np.ndarray,
    path: str | os.PathLike,
    positive: str,
    threshold: float = 0.5,
    title: str = "",
) -> None:
    """Precision-recall curve of the positive class (average precision in the legend), with the operating
    point at ``threshold`` (the tuned decision threshold, or 0.5 = argmax for two classes) marked."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = _plt()
    precision, recall, _ = precision_recall_curve(y, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, label=f"{positive}: AP {average_precision_score(y, scores):.4f}")
    pred = scores >= threshold
    tp = float((pred & y).sum())
    p_at = tp / max(1.0, float(pred.sum()))
    r_at = tp / max(1.0, float(y.sum()))
    ax.plot([r_at], [p_at], "o", color="red", label=f"threshold {threshold:.2f}: P {p_at:.3f}, R {r_at:.3f}")
    _square(plt, fig, ax, path, ("recall", "precision"), 1.01, "lower left", title)


def _square(plt, fig, ax, path, axes: tuple[str, str], top: float, legend: str, title: str) -> None:
    """The finish of the probability plots: unit axes, grid, small legend and title, saved and closed."""
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)
    plt.close(fig)


def tradeoff(
    rows: Sequence[dict], path: str | os.PathLike, metric: str, max_drop: float | None = None
) -> None:
    """`bertcls compress report`: score against texts/s per model and runtime, marker area = size on disk;
    the --max-drop line under the reference's score."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    marker = {"torch": "o", "onnx": "s", "onnx-int8": "^"}
    biggest = max(r["mb"] for r in rows) or 1.0
    models = list(dict.fromkeys(r["model"] for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r in rows:
        c = colours[models.index(r["model"]) % len(colours)]
        size = 40 + 400 * r["mb"] / biggest
        ax.scatter(
            r["texts_per_s"], r["score"], s=size, marker=marker.get(r["runtime"], "o"), color=c, alpha=0.7
        )
        ax.annotate(f"{r['model']} {r['runtime']} ({r['mb']:.0f} MB)", (r["texts_per_s"], r["score"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    if max_drop is not None:
        ax.axhline(
            rows[0]["score"] - max_drop / 100,
            color="red",
            ls="--",
            lw=1,
            label=f"--max-drop {max_drop} points",
        )
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("texts/s (log scale; same threads and batch size, tokenisation included)")
    ax.set_ylabel(f"test {metric}")
    ax.grid(alpha=0.3)
    ax.set_title(
        "accuracy against speed; marker area = size on disk; o torch, s ONNX fp32, ^ ONNX int8", fontsize=9
    )
    _save(fig, path)
    plt.close(fig)
