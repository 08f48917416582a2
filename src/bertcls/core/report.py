"""End of a training run: save the best model in HF format, score it, draw plots, write the model card."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from bertcls import __version__
from bertcls.core import metrics, plots
from bertcls.core.config import to_dict
from bertcls.core.io import atomic_write_text
from bertcls.core.models import META_FILE

log = logging.getLogger("bertcls")

# What a finished `bertcls train` run directory holds (besides tokenizer files, whose names depend on
# the tokenizer, and checkpoints/ when --keep-checkpoints is set). Tested end to end.
RUN_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    META_FILE,
    "run_config.yaml",
    "metrics.jsonl",
    "metrics.json",
    "learning_curve.png",
    "confusion_matrix.png",
    "README.md",
    "train.log",
)


def save_model_dir(model, tokenizer, meta: dict, out: Path) -> None:
    """save_pretrained into a staging folder, then move the files in, so a crash leaves no half model."""
    stage = out / ".model.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    model.save_pretrained(stage, safe_serialization=True)
    tokenizer.save_pretrained(stage)
    (stage / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    for f in stage.iterdir():
        os.replace(f, out / f.name)
    stage.rmdir()


def finish_run(
    cfg,
    out: Path,
    model,
    tokenizer,
    splits,
    labels: list[str],
    multi: bool,
    state: dict,
    history: list[dict],
    model_path: str,
    enc_val: list[dict],
) -> dict:
    from bertcls.core.batching import encode
    from bertcls.train.train import label_summary, label_targets, scalar, score

    pad = tokenizer.pad_token_id
    thresholds = None
    saved = out / "checkpoints" / "best" / "validation_metrics.json"
    if not multi and saved.is_file():  # the best checkpoint's validation scores, computed when it was chosen
        val_m = json.loads(saved.read_text(encoding="utf-8"))
    else:
        val_m, val_logits = score(model, enc_val, splits.validation, labels, multi, cfg.eval_batch_size, pad)
    if multi:
        y_val = np.stack(label_targets(splits.validation, labels, True)).astype(int)
        thresholds = metrics.tune_thresholds(metrics.sigmoid(val_logits), y_val)
        val_m, _ = score(
            model, enc_val, splits.validation, labels, multi, cfg.eval_batch_size, pad, np.asarray(thresholds)
        )
        log.info("tuned thresholds: %s", dict(zip(labels, thresholds)))
    result: dict = {"validation": val_m}
    shown, shown_name = val_m, "validation"
    if splits.test is not None:
        enc_test = encode(tokenizer, splits.test.texts, splits.test.pairs, cfg.max_length)
        test_m, _ = score(
            model,
            enc_test,
            splits.test,
            labels,
            multi,
            cfg.eval_batch_size,
            pad,
            None if thresholds is None else np.asarray(thresholds),
        )
        result["test"] = test_m
        shown, shown_name = test_m, "test"
        log.info("test: %s", ", ".join(f"{k}={v:.4f}" for k, v in scalar(test_m).items() if k != "n"))
    result["train"] = {
        "steps": state["global_step"],
        "epochs_completed": state["epoch"],
        "runtime_s": round(state["train_seconds"], 2),
        "samples_per_s": round(state["samples_seen"] / max(state["train_seconds"], 1e-9), 2),
        "best_step": state["best_step"],
        "best_" + cfg.metric: state["best"],
        "stopped_early": state["stopped_early"],
        "precision": state["precision"],
        "n_train": len(splits.train),
        "n_validation": len(splits.validation),
        "label_counts": label_summary(splits.train),
    }
    meta = {
        "bertcls_version": __version__,
        "task": "multi_label" if multi else "single_label",
        "labels": labels,
        "thresholds": thresholds,
        "max_length": cfg.max_length,
        "text_column": cfg.text_column,
        "text_pair_column": cfg.text_pair_column,
        "label_column": cfg.label_column,
        "base_model": cfg.model,
        "base_model_path": model_path,
        "metrics": {k: scalar(v) for k, v in result.items() if k in ("validation", "test")},
    }
    save_model_dir(model, tokenizer, meta, out)
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2, ensure_ascii=False))
    title = f"{cfg.name or out.name}"
    plots.learning_curve(history, out / "learning_curve.png", cfg.metric, title)
    if multi:
        plots.multilabel_confusion(
            shown["per_label"],
            out / "confusion_matrix.png",
            f"{shown_name} confusion matrix per label ({title})",
        )
    else:
        cm = shown["confusion_matrix"]
        plots.confusion_matrix(
            np.asarray(cm["matrix"]),
            cm["labels"],
            out / "confusion_matrix.png",
            f"{shown_name} confusion matrix ({title})",
        )
    atomic_write_text(out / "README.md", model_card(cfg, out, result, meta))
    if not cfg.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    log.info("model saved to %s", out)
    return result


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def model_card(cfg, out: Path, result: dict, meta: dict) -> str:
    name = cfg.name or out.name
    data = cfg.dataset and f"built-in dataset `{cfg.dataset}`" or f"`{cfg.train_file}`"
    keys = ["accuracy", "f1_macro", "f1_micro", "f1_weighted", "precision_macro", "recall_macro", "loss"]
    if meta["task"] == "multi_label":
        keys = ["f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss", "loss"]
    rows = []
    for split in ("validation", "test"):
        if split in result:
            rows.append(
                f"| {split} | {result[split]['n']} | "
                + " | ".join(_fmt(result[split].get(k, "")) for k in keys)
                + " |"
            )
    hyper = {k: v for k, v in to_dict(cfg).items() if v is not None and k not in ("name",)}
    tr = result["train"]
    labels = ", ".join(f"`{lab}`" for lab in meta["labels"])
    return f"""---
library_name: transformers
pipeline_tag: text-classification
base_model: {cfg.model}
tags: [bertcls, text-classification]
---

# {name}

A {"multi-label" if meta["task"] == "multi_label" else "single-label"} text classifier fine-tuned with
bertcls {__version__} from base model `{cfg.model}`.

- **Labels** ({len(meta["labels"])}): {labels}
- **Training data**: {data}; {tr["n_train"]} training rows, {tr["n_validation"]} validation rows.
  Label counts (train): {json.dumps(tr["label_counts"], ensure_ascii=False)}
- **Training**: {tr["steps"]} optimizer steps, {tr["runtime_s"]} s, {tr["samples_per_s"]} samples/s, precision {tr["precision"]};
  best validation {cfg.metric} at step {tr["best_step"]}{" (stopped early)" if tr["stopped_early"] else ""}.
{"- **Decision thresholds** (tuned per label on validation): " + json.dumps(dict(zip(meta["labels"], meta["thresholds"]))) if meta["thresholds"] else ""}

## Metrics

| split | n | {" | ".join(keys)} |
|---|---|{"---|" * len(keys)}
{chr(10).join(rows)}

Full per-class reports and the confusion matrix are in `metrics.json`; curves in `learning_curve.png`,
the confusion matrix in `confusion_matrix.png`; the per-evaluation log in `metrics.jsonl`.

## How to use

```python
from transformers import pipeline
clf = pipeline("text-classification", model="{out}")
clf("your text here")
```

```python
from bertcls import TextClassifier
clf = TextClassifier.from_pretrained("{out}")
clf.predict(["your text here"])
```

```bash
bertcls predict {out} --file texts.csv --output predictions.csv
```

## Hyperparameters

```yaml
{chr(10).join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in hyper.items())}
```
"""
