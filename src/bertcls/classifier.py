"""``TextClassifier``: the one public Python class (shaped like setfit's ``SetFitModel``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from bertcls.core.decision import Decision
from bertcls.core.errors import UserError
from bertcls.core.models import META_FILE, check_model_dir, check_vocab, read_meta

BACKENDS = ("torch", "onnx")


class TextClassifier:
    """A fine-tuned classifier directory, ready to predict.

    >>> clf = TextClassifier.from_pretrained("runs/sst2")
    >>> clf.predict("a gorgeous film")          # one text -> one label
    'positive'
    >>> clf.predict(["dull", "moving"])          # a list -> a list
    ['negative', 'positive']
    """

    def __init__(
        self, model: Any, tokenizer: Any, meta: dict, backend: str = "torch", path: str | None = None
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.backend = backend
        self.path = path
        self.labels: list[str] = list(meta["labels"])
        self.multi_label: bool = meta.get("task") == "multi_label"
        self.thresholds = np.asarray(meta.get("thresholds") or [0.5] * len(self.labels), dtype=np.float32)
        self.max_length: int = int(meta.get("max_length", 512))
        self.batch_size = 64
        # binary, trained with --tune-threshold: the positive class's decision threshold (None = argmax)
        self.decision = Decision.from_meta(meta)
        from bertcls.core.longtext import LongText

        # how texts past max_length are read: what training used (bertcls.json), unless overridden
        self.long_text = LongText.from_meta(meta).check(self.max_length)
        # The TF-IDF baseline mixed into the probabilities (train --ensemble); None = the model alone.
        self.baseline: Any = None
        self.ensemble: Any = None  # core.ensemble.Ensemble: how the two are combined

    def use_ensemble(self) -> None:
        """Combine with the saved TF-IDF baseline as fitted on validation (and its multi-label thresholds)."""
        from bertcls.core.ensemble import Ensemble

        self.ensemble = Ensemble.from_meta(self.meta["ensemble"])
        self.baseline = self.load_baseline()
        if self.multi_label and self.ensemble.thresholds:
            self.thresholds = np.asarray(self.ensemble.thresholds, dtype=np.float32)
        if self.ensemble.threshold is not None:  # tuned on the combined probabilities
            self.decision = Decision.from_meta(self.meta, self.ensemble.threshold)

    def load_baseline(self) -> Any:
        """The TF-IDF baseline saved beside the model (one-line error when missing or corrupt)."""
        from bertcls.core import baseline

        saved = self.meta.get("baseline") or {}
        where = Path(self.path or ".") / saved.get("file", baseline.BASELINE_FILE)
        return baseline.load(where, self.labels, self.multi_label)

    # ---- loading / saving -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        backend: str = "torch",
        threads: int | None = None,
        device: str | None = None,
        onnx_dir: str | os.PathLike | None = None,
        ensemble: bool = True,
    ) -> TextClassifier:
        """Load a directory written by ``bertcls train`` (or any HF sequence-classification directory).

        ``backend="onnx"`` uses the export written by ``bertcls export`` via onnxruntime: ``onnx_dir`` if
        given (absolute, or relative to ``path``), else ``onnx/``, else ``onnx-int8/``. A model trained
        with ``--ensemble`` mixes in its TF-IDF baseline in every backend; ``ensemble=False`` uses the
        model alone."""
        if backend not in BACKENDS:
            raise UserError(f"--backend={backend!r} is invalid: choose one of {', '.join(BACKENDS)}")
        path = str(path)
        hf_cfg = check_model_dir(path, need_classifier=True)
        meta = meta_from_config(hf_cfg) | read_meta(path)
        from bertcls.core.models import load_tokenizer

        tokenizer = load_tokenizer(path)
        if threads:
            import torch

            torch.set_num_threads(threads)
        if backend == "onnx":
            from bertcls.deploy.onnx_backend import OnnxModel

            model = OnnxModel.load(path, threads=threads, onnx_dir=onnx_dir)
        else:
            import torch

            from bertcls.core.models import load_trained

            model = load_trained(path, meta)
            check_vocab(tokenizer, model.config, path)
            model.eval()
            if device:
                model.to(device)
            elif torch.cuda.is_available():
                model.to("cuda")
        clf = cls(model, tokenizer, meta, backend=backend, path=path)
        if ensemble and meta.get("ensemble"):
            clf.use_ensemble()
        return clf

    @classmethod
    def from_args(cls, args: Any) -> TextClassifier:
        """Load ``args.model_dir`` as the inference commands' shared options say (``core.options.InferenceArgs``:
        backend, threads, ONNX export, ensemble, and long-text flags on top of what training saved)."""
        clf = cls.from_pretrained(
            args.model_dir,
            backend=args.backend,
            threads=args.threads,
            onnx_dir=args.onnx_dir,
            ensemble=args.ensemble,
        )
        clf.long_text = args.long_text_for(clf.long_text, clf.max_length)
        return clf

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write an HF-format directory (config with label names, tokenizer, safetensors) + bertcls.json."""
        if self.backend != "torch":
            raise UserError("save_pretrained needs the torch backend; load with backend='torch'")
        from bertcls.core.io import atomic_write_text

        Path(path).mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        atomic_write_text(Path(path) / META_FILE, json.dumps(self.meta, indent=2, ensure_ascii=False))
        saved = self.meta.get("baseline")
        if saved and self.path and Path(self.path).resolve() != Path(path).resolve():
            import shutil

            source = Path(self.path) / saved["file"]
            if source.is_file():  # the baseline travels with the model it is compared with / mixed into
                shutil.copyfile(source, Path(path) / saved["file"])

    # ---- prediction -------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[dict]:
        """Model rows: one per text, or one per window with ``long_text.strategy == "chunks"`` (``doc``
        says whose)."""
        from bertcls.core.longtext import encode_long

        return encode_long(self.tokenizer, texts, pairs, self.max_length, self.long_text)

    def chunk_counts(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[int]:
        """How many windows each text is read in (1 each unless ``long_text.strategy == "chunks"``)."""
        if self.long_text.strategy != "chunks":
            return [1] * len(texts)
        from bertcls.core.longtext import chunk_counts

        return chunk_counts(self.encode(texts, pairs), len(texts))

    def row_logits(self, encodings: list[dict]) -> np.ndarray:
        if self.backend == "onnx":
            return self.model.logits(encodings, self.batch_size, self.tokenizer.pad_token_id)
        from bertcls.core.batching import batched_logits

        return batched_logits(self.model, encodings, self.batch_size, self.tokenizer.pad_token_id)

    def logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """One row of logits per text (a long text's windows pooled, for chunks)."""
        from bertcls.core.longtext import pool

        encodings = self.encode(texts, pairs)
        return pool(self.row_logits(encodings), encodings, len(texts), self.long_text.pooling)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        from bertcls.core.metrics import sigmoid, softmax

        return sigmoid(logits) if self.multi_label else softmax(logits)

    def decide(self, probs: np.ndarray) -> list[Any]:
        """Probabilities -> labels (argmax; per-label thresholds for multi-label; the positive class's
        threshold for a binary model trained with --tune-threshold)."""
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(p >= self.thresholds)] for p in probs]
        ids = self.decision.predict_ids(probs) if self.decision else probs.argmax(axis=1)
        return [self.labels[j] for j in ids]

    @overload
    def predict(self, texts: str, pairs: str | None = None) -> Any: ...
    @overload
    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[Any]: ...

    def predict(self, texts, pairs=None):
        """One text -> its label (a list of labels for multi-label); a list -> a list, in order."""
        single = isinstance(texts, str)
        probs = self.predict_proba(texts, pairs)
        labels = self.decide(probs if not single else probs[None, :])
        return labels[0] if single else labels

    def predict_proba(self, texts, pairs=None) -> np.ndarray:
        """Probabilities, columns in ``self.labels`` order (softmax; sigmoid per label for multi-label)."""
        single, t, p = as_lists(texts, pairs)
        if not t:
            probs = np.zeros((0, len(self.labels)), np.float32)
        elif self.baseline is None:
            probs = self.probabilities(self.logits(t, p))
        else:
            probs = self.ensemble.combine(*self.component_proba(t, p), self.multi_label).astype(np.float32)
        return probs[0] if single else probs

    def explain(
        self,
        texts,
        pairs=None,
        method: str = "ig",
        target: str | None = None,
        steps: int = 32,
        zh_words: str = "chars",
        progress: bool = False,
    ):
        """Why the model predicts what it does: word attributions (``bertcls.analysis.attribution``).

        One text -> an ``Explanation`` (``.top()``, ``.to_html()``, ``.to_dict()``); a list -> a list.
        ``method``: "ig" (Integrated Gradients, torch backend) or "occlusion" (any backend).
        ``target``: the label to explain (default: the prediction). ``zh_words="jieba"`` groups Chinese
        characters into words."""
        from bertcls.analysis.attribution import explain_one

        single, t, p = as_lists(texts, pairs)
        rows = zip(t, p or [None] * len(t))
        if progress:
            from tqdm.auto import tqdm

            rows = tqdm(rows, total=len(t), desc="explain", unit="text")
        out = [explain_one(self, a, b, method, target, steps, zh_words) for a, b in rows]
        return out[0] if single else out

    def component_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> tuple:
        """The model's and the TF-IDF baseline's probabilities apart (the ensemble mixes them)."""
        baseline = self.baseline if self.baseline is not None else self.load_baseline()
        return self.probabilities(self.logits(texts, pairs)), baseline.predict_proba(texts, pairs)

    def __repr__(self) -> str:
        return f"TextClassifier(path={self.path!r}, labels={self.labels}, backend={self.backend!r})"


def as_lists(texts, pairs) -> tuple[bool, list[str], list[str] | None]:
    """(whether one text was given, the texts as a list, the pairs as a list or None), one pair per text."""
    single = isinstance(texts, str)
    t = [texts] if single else list(texts)
    p = None if pairs is None else ([pairs] if isinstance(pairs, str) else list(pairs))
    if p is not None and len(p) != len(t):
        raise UserError(f"got {len(t)} texts but {len(p)} text pairs; give one pair per text")
    return single, t, p


def meta_from_config(cfg: dict) -> dict:
    """Defaults for directories not written by bertcls (plain HF classifiers)."""
    id2label = cfg.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=lambda k: int(k))]
    task = "multi_label" if cfg.get("problem_type") == "multi_label_classification" else "single_label"
    return {
        "task": task,
        "labels": labels,
        "max_length": min(512, int(cfg.get("max_position_embeddings", 512))),
    }
