"""Config dataclasses -> CLI flags and YAML files.

One dataclass per command. Precedence is: dataclass defaults < ``--config FILE.yaml`` < ``--flag`` values.
Field help comes from the attribute docstring written under each field (as litgpt/jsonargparse do), so
the documentation lives next to the default. Unknown keys in YAML are errors, and the resolved config is
written into every run directory with :func:`save_yaml`.

Hand-written rather than jsonargparse/simple-parsing: we need exactly this small subset (flat fields,
Optional/Literal/list[str]) and user-error messages that name the flag, which those libraries phrase
as tracebacks or their own formats.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from bertcls.core.errors import UserError

T = TypeVar("T")

POSITIONAL = "positional"


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings: the string literal written right under a dataclass field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # source unavailable (e.g. zipped install): help is just empty
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, name: str, source: str) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise a UserError naming the key."""
    base, optional = _unwrap_optional(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        raise UserError(f"{source}: '{name}' must not be empty")
    origin = get_origin(base)
    try:
        if origin is Literal:
            choices = get_args(base)
            if value not in choices:
                value = type(choices[0])(value)
            if value not in choices:
                raise ValueError
            return value
        if origin is list:
            (inner,) = get_args(base)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()] if value else []
            if not isinstance(value, (list, tuple)):
                raise ValueError
            if inner in (int, float):  # numbers: "--seeds 0,1,2" as well as "--seeds 0 1 2"
                value = [x for v in value for x in (v.split(",") if isinstance(v, str) else [v]) if x != ""]
            return [_coerce(v, inner, name, source) for v in value]
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    expected = _type_name(tp)
    raise UserError(f"{source}: '{name}' must be {expected}, got {value!r}")


def _type_name(tp: Any) -> str:
    base, optional = _unwrap_optional(tp)
    origin = get_origin(base)
    if origin is Literal:
        name = "one of " + ", ".join(repr(c) for c in get_args(base))
    elif origin is list:
        name = "a list"
    else:
        name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
            base, str(base)
        )
    return name + (" (or null)" if optional else "")


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field (positional fields stay positional); defaults are shown in help."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        default=argparse.SUPPRESS,
        help="YAML file of options (keys are the flag names with '_' or '-'); flags given here override it",
    )
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        base, _ = _unwrap_optional(tp)
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
            )
        )
        doc = docs.get(f.name, "")
        if f.metadata.get(POSITIONAL):
            nargs = "*" if get_origin(base) is list else ("?" if default is not None else None)
            parser.add_argument(f.name, help=doc, nargs=nargs, default=argparse.SUPPRESS)
            continue
        help_text = f"{doc} (default: {default})" if doc else f"(default: {default})"
        help_text = help_text.replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        elif get_origin(base) is list:
            parser.add_argument(flag(f.name), nargs="+", metavar=f.name.upper(), **kwargs)
        elif get_origin(base) is Literal:
            parser.add_argument(
                flag(f.name), metavar="{" + ",".join(map(str, get_args(base))) + "}", **kwargs
            )
        else:
            parser.add_argument(flag(f.name), metavar=f.name.upper(), **kwargs)


def from_dict(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Build a config from a mapping, rejecting unknown keys and coercing types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in names:
            raise UserError(
                f"{source}: unknown option '{key}'; valid options are: {', '.join(sorted(names))}"
            )
        kwargs[name] = _coerce(value, hints[name], flag(name) if source == "command line" else name, source)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in kwargs
    ]
    if missing:
        raise UserError(f"{source}: missing required option(s): {', '.join(flag(m) for m in missing)}")
    return cls(**kwargs)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found; check the --config path")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(
            f"{p}: line {line}: not valid UTF-8 ({raw[e.start : e.start + 4]!r}); save the config file as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{p}:{where}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: a config file must be a mapping of option: value")
    return data


def resolve(cls: type[T], namespace: argparse.Namespace) -> T:
    """defaults < YAML file < command-line flags."""
    given = dict(vars(namespace))
    merged: dict[str, Any] = {}
    config_path = given.pop("config", None)
    if config_path:
        merged.update({str(k).replace("-", "_"): v for k, v in load_yaml(config_path).items()})
        # Validate the file's keys on their own first, so the message names the file.
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        for key in merged:
            if key not in names:
                raise UserError(
                    f"{config_path}: unknown option '{key}'; valid options are: {', '.join(sorted(names))}"
                )
    merged.update(given)
    return from_dict(cls, merged, source="command line" if not config_path else f"{config_path} + flags")


def to_dict(cfg: Any) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.init}


def save_yaml(cfg: Any, path: str | os.PathLike) -> None:
    from bertcls.core.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))


def split_commas(values: list[str]) -> list[str]:
    """A list option of names given as "a,b" as well as "a b" (names never contain commas; paths may,
    so path lists are not split)."""
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def require(condition: bool, name: str, value: Any, expectation: str) -> None:
    """For ``__post_init__``: a failed check names the flag and the bad value."""
    if not condition:
        raise UserError(f"{flag(name)}={value!r} is invalid: {expectation}")


def check_resume(resume: bool, overwrite: bool, output_dir: str | None) -> None:
    """The --resume/--overwrite/--output-dir rules every command with a run directory shares."""
    require(not (resume and overwrite), "resume", resume, "--resume and --overwrite exclude each other")
    require(
        not resume or output_dir is not None,
        "resume",
        resume,
        "--resume needs --output-dir of the run to continue",
    )


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
