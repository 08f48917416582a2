"""The option groups several commands share, as dataclasses their configs inherit (``train.config``,
``deploy.predict``, ...): tracking, SetFit, augmentation, optimisation, long texts, inference. Each field's
docstring is its flag's help; each group's ``check_*``/``__post_init__`` names the flag of a bad value.
The machinery that turns them into flags and YAML is ``core.config``."""

from __future__ import annotations

import dataclasses
from typing import Literal

from bertcls.core.config import POSITIONAL, require, split_commas
from bertcls.core.errors import UserError


@dataclasses.dataclass
class TrackingArgs:
    """Experiment tracking options (``core.tracking``): off by default, each backend an optional extra."""

    report_to: list[str] = dataclasses.field(default_factory=list)
    """Also log parameters, per-step metrics and the final artefacts to: tensorboard (event files in the run directory's tensorboard/), mlflow (see --mlflow-uri); comma-separated. Needs pip install 'bertcls[tracking]'."""
    mlflow_uri: str | None = None
    """MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///<the output directory's parent>/mlflow.db, shared by the runs there)."""
    mlflow_experiment: str = "bertcls"
    """MLflow experiment name."""

    def check_tracking(self) -> None:
        from bertcls.core.tracking import BACKENDS

        self.report_to = split_commas(self.report_to)
        bad = [r for r in self.report_to if r not in BACKENDS]
        require(not bad, "report_to", ",".join(self.report_to), f"choose from {', '.join(BACKENDS)}")


@dataclasses.dataclass
class FewShotArgs:
    """`bertcls train --method setfit` (train.fewshot): its own optimisation options, because SetFit's
    contrastive phase wants other defaults than fine-tuning (Tunstall et al. 2022: 1 epoch, batch 16,
    learning rate 2e-5)."""

    method: Literal["finetune", "setfit"] = "finetune"
    """finetune: fine-tune the encoder with a classification head (the default). setfit: few-shot training for tens of labelled texts per class: contrastive fine-tuning of the sentence encoder on pairs of training texts (same label = similar), then a logistic regression on its embeddings (the setfit library; pip install 'bertcls[fewshot]'); the model is the encoder, its pooling and the regression as one linear layer."""
    setfit_epochs: int = 1
    """setfit: epochs over the generated pairs (--epochs is fine-tuning's)."""
    setfit_batch_size: int = 16
    """setfit: pairs per batch."""
    setfit_learning_rate: float = 2e-5
    """setfit: the encoder's learning rate in the contrastive phase."""
    setfit_iterations: int | None = 20
    """setfit: pairs generated per training text, as in the SetFit paper (20; on SST-2 with 8 texts per class it scores 3.7 points above the library's oversampling, which makes only 144 pairs there: README "Few-shot"). --setfit-iterations none uses the library's oversampling instead."""

    setfit_head: Literal["logistic", "end-to-end"] = "logistic"
    """setfit: the classifier on the embeddings. logistic: a scikit-learn logistic regression fitted on the trained encoder's embeddings (the SetFit paper's). end-to-end: setfit's differentiable linear head, trained together with the encoder by cross-entropy after the contrastive phase (SST-2, 8 texts per class, with --setfit-learning-rate 1e-4: +1.0 points on test and +0.9 on dev over logistic; none at 2e-5: README "Few-shot")."""
    setfit_head_epochs: int = 16
    """setfit --setfit-head end-to-end: epochs over the labelled texts in the head phase (setfit's default)."""
    setfit_head_learning_rate: float = 1e-2
    """setfit --setfit-head end-to-end: the head's learning rate (setfit's default)."""
    setfit_head_body_learning_rate: float = 1e-5
    """setfit --setfit-head end-to-end: the encoder's learning rate in the head phase (setfit's default)."""

    def check_fewshot(self) -> None:
        require(self.setfit_epochs >= 1, "setfit_epochs", self.setfit_epochs, "must be >= 1")
        require(self.setfit_head_epochs >= 1, "setfit_head_epochs", self.setfit_head_epochs, "must be >= 1")
        for name in ("setfit_head_learning_rate", "setfit_head_body_learning_rate"):
            require(getattr(self, name) > 0, name, getattr(self, name), "must be > 0")
        require(self.setfit_batch_size >= 2, "setfit_batch_size", self.setfit_batch_size, "must be >= 2")
        require(
            self.setfit_learning_rate > 0, "setfit_learning_rate", self.setfit_learning_rate, "must be > 0"
        )
        it = self.setfit_iterations
        require(it is None or it >= 1, "setfit_iterations", it, "must be >= 1")
        # a SetFit option that would be ignored is an error, not silence (they used to be ignored)
        changed = [f.name for f in dataclasses.fields(FewShotArgs)
                   if f.name.startswith("setfit_") and getattr(self, f.name) != f.default]  # fmt: skip
        for name in changed:
            require(
                self.method == "setfit",
                name,
                getattr(self, name),
                "only with --method setfit (fine-tuning takes --epochs, --batch-size, --learning-rate)",
            )
            require(
                not name.startswith("setfit_head_") or self.setfit_head == "end-to-end",
                name,
                getattr(self, name),
                "only with --setfit-head end-to-end (the logistic head is fitted by scikit-learn)",
            )
        if self.method != "setfit":
            return
        refused = {  # what SetFit has no place for: flag -> (is set, why)
            "resume": (getattr(self, "resume", False), "setfit runs are short and keep no checkpoints; start again"),
            "text_pair_column": (getattr(self, "text_pair_column", None), "sentence pairs need --method finetune"),
            "long_text": (getattr(self, "long_text", None) not in (None, "truncate"), "setfit reads the first --max-length tokens"),
            "loss": (getattr(self, "loss", "ce") != "ce", "setfit's head is a logistic regression; use --class-weights balanced"),
            "class_weights": (getattr(self, "class_weights", "none") not in ("none", "balanced"), "setfit takes none or balanced"),
        }  # fmt: skip
        for name, (on, why) in refused.items():
            require(not on, name, getattr(self, name), f"not with --method setfit: {why}")
        require(
            not (self.setfit_head == "end-to-end" and getattr(self, "class_weights", "none") != "none"),
            "class_weights",
            getattr(self, "class_weights", "none"),
            "not with --setfit-head end-to-end, whose cross-entropy is unweighted: use --setfit-head logistic",
        )


AUGMENT_METHODS = ("eda", "mlm")


def parse_augment(spec: str, flag: str = "--augment") -> tuple[str, int]:
    """'eda:4' -> ('eda', 4); anything else is a one-line error naming the flag."""
    method, _, n = spec.partition(":")
    if method not in AUGMENT_METHODS or not n.isdigit() or int(n) < 1:
        raise UserError(
            f"{flag}={spec}: give METHOD:N with METHOD one of {', '.join(AUGMENT_METHODS)} and N >= 1 new "
            "texts per training text, e.g. eda:4"
        )
    return method, int(n)


@dataclasses.dataclass
class AugmentArgs:
    """`bertcls train --augment METHOD:N` (train.augmenters, the code `bertcls augment` runs)."""

    augment: str | None = None
    """METHOD:N: N new texts per training row, by eda (synonyms, insertion, swap, deletion; offline WordNet / Cilin) or mlm (--augment-model's guesses), added to the training split only, after any validation split is carved from it; validation and test are never augmented."""
    augment_alpha: float = 0.1
    """Share of the words each new text changes (at least one)."""
    augment_model: str | None = None
    """--augment mlm:N: a model directory with a masked-language-model head (e.g. from bertcls pretrain)."""

    def check_augment(self) -> None:
        method = parse_augment(self.augment)[0] if self.augment else None
        check_augment_options(method, self.augment_model, self.augment_alpha, alpha_field="augment_alpha")


def check_augment_options(method: str | None, model: str | None, alpha: float, alpha_field: str) -> None:
    """The checks `bertcls augment` and `train --augment` share (their alpha flags differ in name)."""
    require(0 < alpha <= 0.5, alpha_field, alpha, "must be in (0, 0.5]")
    require(
        method != "mlm" or bool(model),
        "augment_model",
        model,
        "the mlm method needs a model directory with a masked-language-model head",
    )


@dataclasses.dataclass
class OptimArgs:
    """Optimisation options shared by `bertcls train` and `bertcls pretrain` (their configs extend this)."""

    batch_size: int = 32
    """Examples per optimizer step per device (before gradient accumulation)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches accumulated per optimizer step."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate (1e-4 suits MiniLM and BERT miniatures; 2e-5..5e-5 BERT-base fine-tuning; up to 1e-3 tiny models from scratch)."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_ratio: float = 0.1
    """Fraction of the run for linear warm-up, then linear decay to 0."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Mixed precision: auto = bf16 where the device runs it fast (CUDA, AMX/AVX512-BF16 CPUs), else fp32."""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)."""
    keep_checkpoints: bool = False
    """Keep checkpoints/ (optimizer state etc.) after a successful run."""

    def check_optim(self) -> None:
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        require(
            self.gradient_accumulation_steps >= 1,
            "gradient_accumulation_steps",
            self.gradient_accumulation_steps,
            "must be >= 1",
        )
        require(
            0 < self.learning_rate < 1, "learning_rate", self.learning_rate, "must be in (0, 1), e.g. 1e-4"
        )
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "must be in [0, 1)")
        require(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, "must be >= 0")
        require(self.threads is None or self.threads >= 1, "threads", self.threads, "must be >= 1")


@dataclasses.dataclass
class LongTextArgs:
    """How texts longer than --max-length are read (core.longtext); shared by `train` and the inference
    commands. Unset fields mean: train's defaults, or at inference what the model was trained with."""

    long_text: Literal["truncate", "head-tail", "chunks"] | None = None
    """Texts longer than the window: truncate (first tokens), head-tail (first --head-tokens + the last ones), chunks (overlapping windows over the whole text; training gives each window the text's label, inference pools the windows' logits). Default: truncate for train; at inference what the model was trained with (bertcls.json)."""
    head_tokens: int | None = None
    """head-tail: tokens kept from the start of the text, the rest of the window from its end (default: a quarter of the window, Sun et al. 2019's 128 + 382 ratio)."""
    stride: int | None = None
    """chunks: tokens shared by neighbouring windows (default: a quarter of the window)."""
    pooling: Literal["mean", "max"] | None = None
    """chunks: how the windows' logits become one prediction (default: mean)."""

    def long_text_for(self, saved, max_length: int):
        """The strategy to use: ``saved`` (the model's, a core.longtext.LongText) with any flag given here
        on top, checked."""
        from bertcls.core.longtext import LongText

        lt = dataclasses.replace(saved)
        if self.long_text is not None and self.long_text != lt.strategy:
            lt = LongText(self.long_text)  # another strategy: its own defaults, not the saved ones
        for name in ("head_tokens", "stride", "pooling"):
            if getattr(self, name) is not None:
                setattr(lt, name, getattr(self, name))
        return lt.check(max_length)


@dataclasses.dataclass
class InferenceArgs(LongTextArgs):
    """Model options shared by `bertcls evaluate`, `predict` and `serve` (their configs extend this)."""

    # kw_only: it follows the long-text fields, which have defaults
    model_dir: str = dataclasses.field(kw_only=True, metadata={POSITIONAL: True})
    """Directory written by `bertcls train`."""
    backend: Literal["torch", "onnx"] = "torch"
    """Inference backend (onnx needs `bertcls export` first)."""
    onnx_dir: str | None = None
    """Which ONNX export to use (absolute, or relative to MODEL_DIR; default: onnx/, else onnx-int8/)."""
    threads: int | None = None
    """CPU threads for inference (default: torch's / onnxruntime's choice)."""
    ensemble: bool = True
    """Use the BERT + TF-IDF ensemble when MODEL_DIR has one (trained with --ensemble); --no-ensemble uses the model alone."""

    def __post_init__(self) -> None:
        require(bool(self.model_dir), "model_dir", self.model_dir, "give the model directory")
        require(self.threads is None or self.threads >= 1, "threads", self.threads, "must be >= 1")
        require(
            self.onnx_dir is None or self.backend == "onnx",
            "onnx_dir",
            self.onnx_dir,
            "only used with --backend onnx; add --backend onnx",
        )
