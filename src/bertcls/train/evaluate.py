"""``bertcls evaluate MODEL_DIR --file F``: accuracy, P/R/F1 (macro, micro, weighted), per-class report,
confusion matrix (JSON + PNG; for multi-label a 2x2 matrix per label), multi-label per-label and
example-based scores, and a CSV of the misclassified rows with their probabilities."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bertcls.core import metrics, plots
from bertcls.core.calibration import reliability
from bertcls.core.config import require
from bertcls.core.data import Columns, TextData, label_counts, load
from bertcls.core.io import atomic_write_text, staged_dir
from bertcls.core.multilabel import unseparated_warning
from bertcls.core.options import InferenceArgs
from bertcls.core.probabilities import draw
from bertcls.core.rundir import check_output_dir
from bertcls.core.scoring import label_targets, probability_scores


@dataclass
class EvaluateConfig(InferenceArgs):
    file: str | None = None
    """Labelled data to score (.csv, .tsv, .jsonl, .parquet)."""
    dataset: str | None = None
    """Score a built-in dataset's split instead of a file (tweets, zh-reviews)."""
    split: Literal["test", "validation"] = "test"
    """Which split of --dataset to score."""
    text_column: str | None = None
    """Text column (default: the one used in training)."""
    text_pair_column: str | None = None
    """Second text column for pair models (default: the one used in training)."""
    label_column: str | None = None
    """Label column (default: the one used in training)."""
    encoding: str = "utf-8"
    """Text encoding of the file."""
    skip_empty: bool = False
    """Drop rows with empty text instead of failing."""
    missing_labels: Literal["error", "skip", "keep"] = "error"
    """Rows whose label is empty or reads as a missing value (NaN, null, None, NA, N/A, <NA>, #N/A; any case): error = refuse the file, naming the lines; skip = drop those rows with a warning; keep = take the tokens as class names (empty cells are still refused)."""
    output_dir: str | None = None
    """Where to write the report (default: MODEL_DIR/eval-<file name>)."""
    batch_size: int = 128
    """Texts per inference batch."""
    explain_errors: int = 0
    """Add the words that drove the prediction (column 'why') to the N most confident mistakes in misclassified.csv: Integrated Gradients on torch, occlusion on ONNX (see `bertcls explain`)."""
    baseline: bool = False
    """Also score the TF-IDF baseline saved with the model (and the model alone, when an ensemble is in use) on the same data, side by side."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            bool(self.file) != bool(self.dataset),
            "file",
            self.file,
            "give exactly one of --file or --dataset",
        )
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        require(self.explain_errors >= 0, "explain_errors", self.explain_errors, "must be >= 0")


def load_eval_data(cfg: EvaluateConfig, meta: dict) -> TextData:
    if cfg.dataset:
        from bertcls.core.datasets import load_builtin

        _, val, test = load_builtin(cfg.dataset)
        return test if cfg.split == "test" else val
    cols = Columns(
        text=cfg.text_column or meta.get("text_column") or "text",
        text_pair=cfg.text_pair_column or meta.get("text_pair_column"),
        label=cfg.label_column or meta.get("label_column") or "label",
    )
    return load(
        cfg.file,
        cols,
        encoding=cfg.encoding,
        multi_label=meta.get("task") == "multi_label",
        skip_empty=cfg.skip_empty,
        missing_labels=cfg.missing_labels,
    )


def _stem(cfg: EvaluateConfig) -> str:
    return Path(cfg.file).stem if cfg.file else f"{cfg.dataset}-{cfg.split}"


def output_dir(cfg: EvaluateConfig) -> Path:
    return Path(cfg.output_dir) if cfg.output_dir else Path(cfg.model_dir) / f"eval-{_stem(cfg)}"


def run(cfg: EvaluateConfig) -> dict:
    from bertcls.classifier import TextClassifier

    out = output_dir(cfg)
    # Checked before the work: the report may replace an earlier report, never the model or the data.
    check_output_dir(
        out, "evaluate", overwrite=None, inputs=[("MODEL_DIR", cfg.model_dir), ("--file", cfg.file)]
    )
    clf = TextClassifier.from_args(cfg)
    clf.batch_size = cfg.batch_size
    data = load_eval_data(cfg, clf.meta)
    compared: dict = {}
    if cfg.baseline:  # one forward pass serves the model's, the baseline's and the ensemble's figures
        compared, probs = compare_with_baseline(clf, data)
    else:
        probs = clf.predict_proba(data.texts, data.pairs)
    preds = clf.decide(probs)
    labels = clf.labels
    positive = binary_positive(clf)
    if clf.multi_label:
        y = np.stack(label_targets(data, labels, True)).astype(int)
        yp = (probs >= clf.thresholds).astype(int)
        # back to logits: AP, ROC-AUC and the loss need scores, not decisions
        result = metrics.multi_label(y, yp, labels, metrics.logit(probs))
        result["ece"] = reliability(probs, y, True)["ece"]
        # labels the model was never trained on count as missed (their rows keep their other labels)
        counts = label_counts(data)
        if unseen := sorted(data.label_set() - set(labels)):
            result["unseen_labels"] = {lab: int(counts[lab]) for lab in unseen}
        if flat := unseparated_warning(probs, labels, "text in this file"):
            result["warnings"] = [flat]
        wrong = [i for i in range(len(data)) if sorted(preds[i]) != sorted(x for x in data.labels[i])]
    else:
        y = np.asarray(label_targets(data, labels, False))
        result = metrics.single_label(data.labels, preds, labels)
        result |= probability_scores(probs, y, labels, positive)
        if clf.decision is not None:
            result["decision_threshold"] = clf.decision.threshold
        wrong = [i for i in range(len(data)) if preds[i] != data.labels[i]]
    result |= compared
    if clf.baseline is not None:
        result["ensemble"] = clf.ensemble.describe()
    result["model_dir"] = cfg.model_dir
    result["data"] = data.source if not cfg.dataset else f"{cfg.dataset}:{cfg.split}"

    why = explain_errors(clf, data, probs, wrong, cfg.explain_errors) if cfg.explain_errors else {}
    stem = _stem(cfg)
    with staged_dir(out) as tmp:
        atomic_write_text(tmp / "metrics.json", json.dumps(result, indent=2, ensure_ascii=False))
        if not clf.multi_label:
            atomic_write_text(tmp / "confusion_matrix.json", json.dumps(result["confusion_matrix"], indent=2))
        title = f"{stem} ({Path(cfg.model_dir).name})"
        plots.confusion(result, tmp / "confusion_matrix.png", title)
        # the model's own probabilities were scaled by T; an ensemble's were not
        temperature = clf.meta.get("temperature") if clf.baseline is None else None
        draw(tmp, probs, y, clf.multi_label, labels, positive, clf.decision, temperature, title)
        write_misclassified(tmp / "misclassified.csv", data, preds, probs, labels, wrong, why)
    result["output_dir"] = str(out)
    result["n_misclassified"] = len(wrong)
    return result


def binary_positive(clf) -> int | None:
    """The positive class of a binary model (bertcls.json's, else the second label); None otherwise."""
    if clf.multi_label or len(clf.labels) != 2:
        return None
    if clf.decision is not None:
        return clf.decision.positive
    saved = clf.meta.get("positive_label")
    return clf.labels.index(saved) if saved in clf.labels else 1


def compare_with_baseline(clf, data: TextData) -> tuple[dict, np.ndarray]:
    """Scores of the saved TF-IDF baseline (and of the model alone when the ensemble is what predicts),
    and the probabilities the classifier predicts with."""
    from bertcls.core.scoring import as_logits, scalar, score_logits

    model_p, base_p = clf.component_proba(data.texts, data.pairs)
    multi, labels = clf.multi_label, clf.labels
    saved = (clf.meta.get("baseline") or {}).get("thresholds")
    t = None if saved is None else np.asarray(saved)
    out = {"baseline": scalar(score_logits(as_logits(base_p, multi), data, labels, multi, t))}
    if clf.baseline is None:
        return out, model_p
    t = np.asarray(clf.meta["thresholds"]) if multi and clf.meta.get("thresholds") else None
    out["model_alone"] = scalar(score_logits(as_logits(model_p, multi), data, labels, multi, t))
    return out, clf.ensemble.combine(model_p, base_p, multi)


def explain_errors(clf, data: TextData, probs: np.ndarray, wrong: list[int], n: int) -> dict[int, str]:
    """The n most confident mistakes -> 'word (+score); ...': the five words that pushed hardest
    towards each wrongly predicted label."""
    worst = sorted(wrong, key=lambda i: -float(probs[i].max()))[:n]
    from bertcls.analysis.attribution import default_method

    method = default_method(clf.backend)
    pairs = None if data.pairs is None else [data.pairs[i] for i in worst]
    found = clf.explain([data.texts[i] for i in worst], pairs, method=method, progress=len(worst) > 20)
    return {
        i: "; ".join(f"{w} ({s:+.3f})" for t in e.targets for w, s in e.top(5, t.label))
        for i, e in zip(worst, found)
    }


def write_misclassified(
    path: Path,
    data: TextData,
    preds: list,
    probs: np.ndarray,
    labels: list[str],
    wrong: list[int],
    why: dict[int, str] | None = None,
) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        header = ["row", "text"] + (["text_pair"] if data.pairs is not None else []) + ["label", "predicted"]
        w.writerow(header + [f"p_{lab}" for lab in labels] + (["why"] if why else []))
        for i in wrong:

            def show(v):
                return ";".join(v) if isinstance(v, list) else v

            row = [data.rows[i] if data.rows else i + 1, data.texts[i]]
            if data.pairs is not None:
                row.append(data.pairs[i])
            extra = [why.get(i, "")] if why else []
            w.writerow(row + [show(data.labels[i]), show(preds[i])] + [f"{p:.4f}" for p in probs[i]] + extra)


def summarize(result: dict) -> str:
    """What `bertcls evaluate` prints: the essentials; every number is in metrics.json."""
    from bertcls.core.report import metrics_lines

    more = [(name, result.get(key)) for name, key in (("model alone", "model_alone"), ("TF-IDF", "baseline"))]
    lines = metrics_lines(result, "evaluated", [(n, m) for n, m in more if m is not None])
    if "ensemble" in result:
        lines.append(f"evaluated = the model + TF-IDF ensemble ({result['ensemble']})")
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    if result.get("unseen_labels"):
        lines.append(f"labels the model never saw (counted as errors): {result['unseen_labels']}")
    out = Path(result["output_dir"])
    lines.append(
        f"{result['n_misclassified']} misclassified ({out / 'misclassified.csv'}); all metrics: {out / 'metrics.json'}"
    )
    return "\n".join(lines)
