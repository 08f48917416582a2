"""End of a run: save the model in HF format, score it, draw plots, write the model card and the short
summary the CLI prints. `train` and `pretrain` both finish here."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertcls import __version__
from bertcls.core import metrics, plots
from bertcls.core.config import to_dict
from bertcls.core.io import atomic_write_text
from bertcls.core.models import META_FILE
from bertcls.core.multilabel import label_priors, learning_checks
from bertcls.core.rundir import HISTORY_FILE, RunDir, save_model_dir, write_history
from bertcls.core.scoring import label_summary, label_targets, scalar, score, split_scalars

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
    "baseline.skops",  # unless --no-baseline
)


@dataclass
class FinishedRun:
    """Everything the end of a `bertcls train` run reports on."""

    cfg: Any  # TrainConfig
    run: RunDir
    model: Any
    tokenizer: Any
    splits: Any  # train.Splits
    labels: list[str]
    state: dict
    history: list[dict]
    model_path: str
    enc_val: list[dict]

    @property
    def multi(self) -> bool:
        return bool(self.cfg.multi_label)

    def score(
        self, enc: list[dict], data, thresholds: list[float] | None = None, tune: bool = False
    ) -> tuple[dict, np.ndarray]:
        t = None if thresholds is None else np.asarray(thresholds)
        pad = self.tokenizer.pad_token_id
        cfg = self.cfg
        return score(
            self.model, enc, data, self.labels, self.multi, cfg.eval_batch_size, pad, t, tune, cfg.pooling
        )


def _validation_scores(r: FinishedRun) -> tuple[dict, list[float] | None, np.ndarray | None]:
    """Validation metrics of the best model (for multi-label with thresholds tuned on validation), and
    its validation logits when they were computed (the ensemble needs them)."""
    saved = r.run.best / "validation_metrics.json"
    if (
        not r.multi and saved.is_file() and not r.cfg.ensemble
    ):  # the best checkpoint's validation scores, computed when it was chosen
        return json.loads(saved.read_text(encoding="utf-8")), None, None
    # one forward pass: multi-label thresholds are tuned on these logits and the metrics taken at them
    val_m, val_logits = r.score(r.enc_val, r.splits.validation, tune=r.multi)
    if not r.multi:
        return val_m, None, val_logits
    thresholds = val_m.pop("thresholds")
    log.info("tuned thresholds: %s", dict(zip(r.labels, thresholds)))
    y_val = np.stack(label_targets(r.splits.validation, r.labels, True)).astype(int)
    probs = metrics.sigmoid(val_logits)
    priors = label_priors(label_targets(r.splits.train, r.labels, True))
    prior_m, warnings = learning_checks(y_val, probs, priors, r.labels, r.cfg.metric, val_m)
    val_m["label_prior_predictor"] = scalar(prior_m)
    for w in warnings:
        log.warning(w)
    val_m["warnings"] = warnings
    return val_m, thresholds, val_logits


def _train_summary(r: FinishedRun) -> dict:
    state = r.state
    return {
        "steps": state["global_step"],
        "epochs_completed": state["epoch"],
        "runtime_s": round(state["train_seconds"], 2),
        "samples_per_s": round(state["samples_seen"] / max(state["train_seconds"], 1e-9), 2),
        "best_step": state["best_step"],
        "metric": r.cfg.metric,
        "best_" + r.cfg.metric: state["best"],
        "stopped_early": state["stopped_early"],
        "precision": state["precision"],
        "n_train": len(r.splits.train),
        "n_validation": len(r.splits.validation),
        "label_counts": label_summary(r.splits.train),
        "n_train_without_label": sum(1 for lab in r.splits.train.labels if not lab) if r.multi else 0,
        "language_fit": state.get("language_fit"),
    }


def finish_run(r: FinishedRun) -> dict:
    """Write the finished model into the run's working directory (``publish`` moves it into place)."""
    from bertcls.core.longtext import encode_long

    cfg, out = r.cfg, r.run.work
    val_m, thresholds, val_logits = _validation_scores(r)
    if fit_warning := r.state.get("language_fit", {}).get("warning"):
        val_m.setdefault("warnings", []).insert(0, fit_warning)
    result: dict = {"validation": val_m}
    shown, shown_name = val_m, "validation"
    test_logits = None
    if r.splits.test is not None:
        test = r.splits.test
        enc_test = encode_long(r.tokenizer, test.texts, test.pairs, cfg.max_length, cfg.long_text_spec())
        result["test"], test_logits = r.score(enc_test, r.splits.test, thresholds)
        shown, shown_name = result["test"], "test"
        log.info("test: %s", ", ".join(f"{k}={v:.4f}" for k, v in scalar(shown).items() if k != "n"))
    result["train"] = _train_summary(r)
    compared, compared_meta = _compare(r, val_logits, test_logits)
    result |= compared
    meta = {
        "bertcls_version": __version__,
        "task": "multi_label" if r.multi else "single_label",
        "labels": r.labels,
        "thresholds": thresholds,
        "max_length": cfg.max_length,
        "long_text": cfg.long_text_spec().as_dict(),
        "text_column": cfg.text_column,
        "text_pair_column": cfg.text_pair_column,
        "label_column": cfg.label_column,
        "base_model": cfg.model,
        "base_model_path": r.model_path,
        "metrics": split_scalars(result),
    } | compared_meta
    save_model_dir(r.model, r.tokenizer, out, (META_FILE, meta))
    write_history(out / HISTORY_FILE, r.history)
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2, ensure_ascii=False))
    title = f"{cfg.name or r.run.final.name}"
    plots.learning_curve(r.history, out / "learning_curve.png", cfg.metric, title)
    per_label = " per label" if r.multi else ""
    plots.confusion(
        shown, out / "confusion_matrix.png", f"{shown_name} confusion matrix{per_label} ({title})"
    )
    atomic_write_text(out / "README.md", model_card(cfg, r.run.final, result, meta))
    if not cfg.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    result["output_dir"] = str(r.run.final)
    return result


def metrics_lines(m: dict, split: str, more: list[tuple[str, dict]] = ()) -> list[str]:
    """A small table of the essentials of one split's metrics (single- or multi-label): a header, the
    model's row, then one row per ``more`` entry (the baseline, the ensemble)."""
    multi = "f1_samples" in m
    cols = (
        [("micro-F1", "f1_micro"), ("macro-F1", "f1_macro"), ("AP macro", "ap_macro"), ("loss", "loss")]
        if multi
        else [("accuracy", "accuracy"), ("macro-F1", "f1_macro"), ("loss", "loss")]
    )
    width = max([10] + [len(name) for name, _ in more])
    head = f"{'split':<{width}} {'rows':>6}" + "".join(f" {name:>9}" for name, _ in cols)
    rows = [(split, m), *more]
    return [head] + [
        f"{name:<{width}} {x['n']:>6}" + "".join(f" {_fmt(x.get(k, '')):>9}" for _, k in cols)
        for name, x in rows
    ]


def _compare(r: FinishedRun, val_logits, test_logits) -> tuple[dict, dict]:
    """The TF-IDF baseline beside the model, and the ensemble when asked (core.baseline)."""
    if not r.cfg.baseline:
        return {}, {}
    from bertcls.core import baseline

    probs = metrics.sigmoid if r.multi else metrics.softmax
    bert_val = probs(val_logits) if r.cfg.ensemble else None
    bert_test = None if test_logits is None else probs(test_logits)
    cfg = r.cfg
    return baseline.compare(
        r.splits, r.labels, r.multi, cfg.metric, bert_val, bert_test, r.run.work, cfg.ensemble_method
    )


def _compared_rows(result: dict, split: str) -> list[tuple[str, dict]]:
    rows = []
    if split in result.get("baseline", {}):
        rows.append((f"{split} TF-IDF", result["baseline"][split]))
    if split in result.get("ensemble", {}):
        rows.append((f"{split} ensemble", result["ensemble"][split]))
    return rows


def summary_table(result: dict) -> str:
    """The few lines `bertcls train` ends with: test (else validation) essentials beside the baseline's,
    time, where it is."""
    from bertcls.core.baseline import comparison_line

    split = "test" if "test" in result else "validation"
    tr = result["train"]
    out = result.get("output_dir", "")
    versus = comparison_line(result, tr.get("metric", "f1_macro"))
    return "\n".join(
        metrics_lines(result[split], split, _compared_rows(result, split))
        + ([versus] if versus else [])
        + [
            f"trained {tr['steps']} steps in {tr['runtime_s']:.1f} s"
            + (" (stopped early)" if tr["stopped_early"] else ""),
            f"model saved to {out} (all metrics: {Path(out) / 'metrics.json'})",
        ]
        + [f"warning: {w}" for w in result["validation"].get("warnings", [])]
        + (
            [f"warning: no TF-IDF baseline: {result['baseline_skipped']}"]
            if "baseline_skipped" in result
            else []
        )
    )


def hyperparameters(cfg, skip: tuple = (None,), drop: tuple[str, ...] = ()) -> str:
    """The model cards' YAML block: every option that was set."""
    items = [(k, v) for k, v in to_dict(cfg).items() if k not in drop and not any(v == x for x in skip)]
    return "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in items)


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

{baseline_section(result, keys[:2])}
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
{hyperparameters(cfg, skip=(None,), drop=("name",))}
```
"""


def baseline_section(result: dict, keys: list[str]) -> str:
    """The model card's comparison with the TF-IDF baseline (and the ensemble), when one was fitted."""
    from bertcls.core.baseline import comparison_line

    base = result.get("baseline")
    if not base:
        return ""
    ens = result.get("ensemble")
    rows = []
    for split in ("validation", "test"):
        for name, m in (("this model", result), ("TF-IDF baseline", base), ("ensemble", ens or {})):
            if split in m:
                rows.append(
                    f"| {name} | {split} | " + " | ".join(_fmt(m[split].get(k, "")) for k in keys) + " |"
                )
    use = (
        f"`TextClassifier`, `bertcls predict`, `evaluate` and `serve` use the ensemble ({ens['method']}, "
        f"fitted on validation; `--no-ensemble` for the model alone). Plain `transformers` loads the model alone."
        if ens
        else "Add `--ensemble` to `bertcls train` to combine the two."
    )
    return f"""
## Against a classical baseline

{comparison_line(result, result["train"].get("metric", "f1_macro"))}.
The baseline is {base["model"]} ({base["analyzer"]}, C={base["C"]}, {base["features"]} features, fitted
in {base["fit_seconds"]} s on the same training split), saved as `baseline.skops`. {use}

| model | split | {" | ".join(keys)} |
|---|---|{"---|" * len(keys)}
{chr(10).join(rows)}
"""


def pretrain_card(cfg, out: Path, result: dict) -> str:
    """The README.md of a `bertcls pretrain` run."""
    ev, tr, mo = result["eval"] or {}, result["train"], result["model"]
    init = (
        f"continued from `{cfg.model}`"
        if cfg.model
        else f"random initialisation, tokenizer `{cfg.tokenizer}`"
    )
    scores = (
        f"held-out MLM accuracy {ev['mlm_accuracy']:.4f} (loss {ev['mlm_loss']:.4f}), NSP accuracy "
        f"{ev['nsp_accuracy']:.4f} on {ev['n']} instances"
        if ev
        else "no held-out evaluation"
    )
    return f"""---
library_name: transformers
tags: [bertcls, bert, fill-mask, pretraining]
---

# {out.name}

A BERT (`BertForPreTraining`: MLM + NSP heads) pretrained with bertcls; {init}.

- **Size**: {mo["layers"]} layers, hidden {mo["hidden"]}, {mo["heads"]} heads, feed-forward {mo["intermediate"]},
  vocabulary {mo["vocab_size"]}; {mo["parameters"] / 1e6:.2f}M parameters.
- **Data**: {", ".join(f"`{c}`" for c in cfg.corpus)}; {tr["n_train_instances"]} training instances of up to
  {cfg.max_seq_length} tokens{", whole-word masking" if cfg.whole_word_masking else ""}.
- **Training**: {tr["steps"]} steps in {tr["minutes"]} min ({tr["tokens_per_s"]} tokens/s), stopped by the
  {tr["stopped_by"] or "no"} limit.
- **Result**: {scores}. Curves in `learning_curve.png`, every logged value in `metrics.jsonl`.

Fine-tune it: `bertcls train --model {out} --train-file train.csv`.

## Hyperparameters

```yaml
{hyperparameters(cfg, skip=(None, [], False))}
```
"""
