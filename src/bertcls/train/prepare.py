"""`bertcls train`, before the loop: the data splits and labels, the model, the run directory (the
options are ``train.config.TrainConfig``).

Everything here can fail on user input, and all of it runs before the run directory exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bertcls.core import rundir
from bertcls.core.data import Columns, TextData, label_counts, load, split_validation
from bertcls.core.errors import UserError
from bertcls.core.losses import parse_class_weights
from bertcls.train.config import TrainConfig


@dataclass
class Splits:
    train: TextData
    validation: TextData
    test: TextData | None


@dataclass
class Prepared:
    """What every training method starts from, checked before the run directory exists."""

    model_path: str
    run_dir: rundir.RunDir
    splits: Splits
    labels: list[str]
    tokenizer: object


def prepare(cfg: TrainConfig) -> Prepared:
    """The setup `train` and `train --method setfit` share: threads, console logging, the model, the
    planned run directory, the data splits, the labels and the tokenizer."""
    import torch

    from bertcls.core.models import load_tokenizer, resolve_model
    from bertcls.core.runtime import setup_logging

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    setup_logging(None)
    model_path = resolve_model(cfg.model)
    run_dir = plan_run_dir(cfg, model_path)
    check_max_length(cfg, model_path)
    splits = load_splits(cfg)
    labels = resolve_labels(splits, cfg)
    return Prepared(model_path, run_dir, splits, labels, load_tokenizer(model_path))


def _split(data: TextData, fraction: float, cfg: TrainConfig, flag: str) -> tuple[TextData, TextData]:
    """A seeded stratified split, with sklearn's refusal (too few rows per class) as a one-line error."""
    try:
        return split_validation(data, fraction, cfg.seed, cfg.multi_label)
    except ValueError as e:
        raise UserError(
            f"{data.source}: cannot split {len(data)} rows for {flag} ({str(e).splitlines()[0]}); "
            f"give more rows or a --validation-file"
        ) from None


def read(cfg: TrainConfig, path: str) -> TextData:
    """One labelled file with the run's column, encoding and missing-value options."""
    cols = Columns(text=cfg.text_column, text_pair=cfg.text_pair_column, label=cfg.label_column)
    return load(
        path,
        cols,
        encoding=cfg.encoding,
        multi_label=cfg.multi_label,
        skip_empty=cfg.skip_empty,
        missing_labels=cfg.missing_labels,
    )


def load_splits(cfg: TrainConfig) -> Splits:
    if cfg.dataset:
        from bertcls.core.datasets import load_builtin

        train, val, test = load_builtin(cfg.dataset)
    else:
        train = read(cfg, cfg.train_file)
        val = read(cfg, cfg.validation_file) if cfg.validation_file else None
        test = read(cfg, cfg.test_file) if cfg.test_file else None
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
    if cfg.augment:  # the training split alone, once validation has been carved from it
        from bertcls.train.augmenters import augment_split

        train = augment_split(train, cfg)
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


def check_label_options(cfg: TrainConfig, labels: list[str], model) -> None:
    """The options that name labels or need a task shape, checked once the labels are known."""
    weights = parse_class_weights(cfg.class_weights)
    if isinstance(weights, dict) and (unknown := sorted(set(weights) - set(labels))):
        raise UserError(
            f"--class-weights names {unknown}, which the training data does not have; labels: {labels}"
        )
    for flag, on in (("--tune-threshold", cfg.tune_threshold), ("--positive-label", cfg.positive_label)):
        if on and (cfg.multi_label or len(labels) != 2):
            raise UserError(f"{flag} is for binary tasks; the training data has {len(labels)} labels")
    if cfg.positive_label is not None and cfg.positive_label not in labels:
        raise UserError(f"--positive-label={cfg.positive_label!r} is not a label; labels: {labels}")
    if cfg.calibrate == "temperature":
        from bertcls.core.calibration import output_layer

        if output_layer(model) is None:
            raise UserError(
                f"--calibrate temperature: {type(model).__name__} has no linear output layer to scale; "
                f"use --calibrate none"
            )


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


def check_max_length(cfg: TrainConfig, model_path: str) -> None:
    """--max-length beyond the model's position embeddings fails deep inside the first forward pass;
    say so up front, from config.json alone. (A model that cannot load is reported by build_model.)"""
    from transformers import AutoConfig

    try:
        limit = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    except (OSError, ValueError):
        return
    if limit and cfg.max_length > limit:
        raise UserError(
            f"--max-length={cfg.max_length} exceeds the {limit} positions of --model={cfg.model}; "
            f"use --max-length {limit} or less"
        )


def build_model(model_path: str, labels: list[str], multi: bool, tokenizer, dropout: float | None = None):
    from transformers import AutoModelForSequenceClassification

    from bertcls.core.load_report import load_classifier
    from bertcls.core.models import check_vocab

    if dropout is not None:  # BERT-family names for the hidden-layer and attention dropout
        drop = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    else:
        drop = {}

    def load(**kw):
        return AutoModelForSequenceClassification.from_pretrained(
            model_path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)},
            problem_type="multi_label_classification" if multi else "single_label_classification",
            ignore_mismatched_sizes=True,  # re-fine-tuning a classifier with a different label set
            **drop,
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
    return model
