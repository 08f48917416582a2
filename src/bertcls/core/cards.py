"""Model cards: the README.md written into every `train` and `pretrain` run directory."""

from __future__ import annotations

import json
from pathlib import Path

from bertcls import __version__
from bertcls.core.config import to_dict


def hyperparameters(cfg, skip: tuple = (None,), drop: tuple[str, ...] = ()) -> str:
    """The model cards' YAML block: every option that was set."""
    items = [(k, v) for k, v in to_dict(cfg).items() if k not in drop and not any(v == x for x in skip)]
    return "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in items)


def annotate_run(out: Path, key: str, info: dict, section: str) -> None:
    """What a verb built on `train` (distill, prune, self-train) adds to the run directory train wrote:
    ``info`` under ``key`` in bertcls.json, and ``section`` at the end of the model card."""
    from bertcls.core.io import atomic_write_text

    bj = out / "bertcls.json"
    meta = json.loads(bj.read_text()) | {key: info}
    atomic_write_text(bj, json.dumps(meta, indent=2, ensure_ascii=False))
    card = out / "README.md"
    atomic_write_text(card, card.read_text(encoding="utf-8") + section)


def fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def model_card(cfg, out: Path, result: dict, meta: dict) -> str:
    name = cfg.name or out.name
    data = cfg.dataset and f"built-in dataset `{cfg.dataset}`" or f"`{cfg.train_file}`"
    keys = ["accuracy", "f1_macro", "f1_micro", "f1_weighted", "precision_macro", "recall_macro", "loss"]
    if meta["task"] == "multi_label":
        keys = ["f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss", "loss"]
    keys += [k for k in ("pr_auc", "ece") if k in result.get("test", result["validation"])]
    rows = []
    for split in ("validation", "test"):
        if split in result:
            rows.append(
                f"| {split} | {result[split]['n']} | "
                + " | ".join(fmt(result[split].get(k, "")) for k in keys)
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
{probability_lines(result, meta)}

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
                    f"| {name} | {split} | " + " | ".join(fmt(m[split].get(k, "")) for k in keys) + " |"
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


def probability_lines(result: dict, meta: dict) -> str:
    """The card's lines on calibration and the binary decision rule, when the run used them."""
    lines = []
    if "decision_threshold" in meta:
        lines.append(
            f"- **Decision threshold** (tuned on validation): predict `{meta['positive_label']}` when its "
            f"probability is at least {meta['decision_threshold']:.2f} (bertcls applies it in every backend; "
            f"plain `transformers` takes the argmax)."
        )
    if cal := result.get("calibration"):
        v = cal["validation"]
        lines.append(
            f"- **Calibration**: temperature {cal['temperature']:.3f}, fitted on validation and folded into "
            f"the output layer (every backend, plain `transformers` included); validation ECE "
            f"{v['before']['ece']:.4f} -> {v['after']['ece']:.4f}, NLL {v['before']['nll']:.4f} -> "
            f"{v['after']['nll']:.4f}. Reliability diagram: `reliability.png`."
        )
    return "\n".join(lines)
