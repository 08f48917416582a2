"""Run an ONNX export (written by ``bertcls export``) with onnxruntime, batched like the torch backend.

An export is a directory holding ``model.onnx`` and ``export_report.json``. By default it lives inside
the model directory (``onnx/`` for fp32, ``onnx-int8/`` for int8); the tokenizer, labels and settings
still come from the model directory itself, so the two are used together.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bertcls.core.errors import UserError, require_extra

MODEL_FILE = "model.onnx"
REPORT_FILE = "export_report.json"
# Looked for in this order when no export directory is named: fp32 first, as it matches torch exactly.
DEFAULT_DIRS = ("onnx", "onnx-int8")


def import_onnxruntime():
    require_extra("onnxruntime", "export", "the onnx backend")
    import onnxruntime

    return onnxruntime


def weights_digest(model_dir: str | os.PathLike) -> dict | None:
    """Name, size and sha256 of the model's weights: lets a load notice an export of older weights."""
    from bertcls.core.models import WEIGHT_FILES

    for name in WEIGHT_FILES:
        f = Path(model_dir) / name
        if f.is_file():
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return {"file": name, "size": f.stat().st_size, "sha256": h.hexdigest()}
    return None


def find_export(model_dir: str | os.PathLike, onnx_dir: str | os.PathLike | None = None) -> Path:
    """The export directory to use: ``onnx_dir`` (absolute, or relative to the model directory), else the
    first of ``onnx/`` and ``onnx-int8/`` that holds a model."""
    base = Path(model_dir)
    if onnx_dir is not None:
        given = Path(onnx_dir).expanduser()
        # A relative name means a folder of the model directory first (``--onnx-dir onnx-int8``).
        for cand in [given] if given.is_absolute() else [base / given, given]:
            if (cand / MODEL_FILE).is_file():
                return cand
        raise UserError(
            f"{onnx_dir}: no {MODEL_FILE} there (nor under {base}); create the export with: "
            f"bertcls export {model_dir} --format onnx --output-dir {onnx_dir}"
        )
    for name in DEFAULT_DIRS:
        if (base / name / MODEL_FILE).is_file():
            return base / name
    raise UserError(
        f"{model_dir}: no ONNX export (looked for {' and '.join(d + '/' + MODEL_FILE for d in DEFAULT_DIRS)}); "
        f"create one with: bertcls export {model_dir} --format onnx"
    )


def read_report(export_dir: str | os.PathLike) -> dict:
    f = Path(export_dir) / REPORT_FILE
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise UserError(f"{f}: not valid JSON; re-create the export with: bertcls export") from None


def session_options(threads: int | None):
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    # 0 lets onnxruntime pick (one thread per physical core); a number pins the intra-op pool.
    so.intra_op_num_threads = int(threads or 0)
    # BERT is one chain of ops: parallelism comes from intra-op threads, an inter-op pool only adds overhead.
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: the optimizer's informational notes are noise for users
    return so


class OnnxModel:
    """An onnxruntime session over an exported classifier; ``logits`` mirrors ``batching.batched_logits``.

    Dynamic int8 exports run one text per call (``workers`` > 0). onnxruntime's dynamic quantization takes
    each matrix product's activation scale from the whole input, padding included, so in a batch a text's
    score depends on the texts batched with it: measured on SST-2 with the MiniLM int8 export, 1,910 of
    200,000 labels differed between two ways of cutting the same rows into batches. Alone, a text always
    gets the same score, and the cores stay busy by running ``workers`` texts at once on one-thread
    sessions: for MiniLM-L6 on SST-2 as fast as padded batches of 32 on one 2-thread session
    (bench/int8_per_text.py); a 3-layer model lost about a fifth (README, compression)."""

    def __init__(self, session: Any, path: Path, report: dict | None = None, workers: int = 0):
        self.session = session
        self.path = path
        self.report = report or {}
        self.workers = workers  # > 0: per-text mode with this many concurrent calls
        self._pool = None
        self.input_names = [i.name for i in session.get_inputs()]
        missing = {"input_ids", "attention_mask"} - set(self.input_names)
        if missing:
            raise UserError(
                f"{path}: the ONNX model has no input(s) {', '.join(sorted(missing))}; "
                f"it was not written by 'bertcls export' — re-export the model"
            )
        self.output_name = session.get_outputs()[0].name
        dim = session.get_outputs()[0].shape[-1]
        self.num_labels = dim if isinstance(dim, int) else int(self.report.get("num_labels", 0))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        threads: int | None = None,
        onnx_dir: str | os.PathLike | None = None,
        check_weights: bool = True,
    ) -> OnnxModel:
        """Open the export of model directory ``path`` (see :func:`find_export`) on the CPU.

        With ``check_weights`` a report that records the weights' digest must match the model directory's
        weights, so retraining into the same directory cannot silently serve an outdated export."""
        export = find_export(path, onnx_dir)
        report = read_report(export)
        recorded = report.get("weights")
        if check_weights and recorded:
            current = weights_digest(path)
            if current and (
                current["size"] != recorded.get("size") or current["sha256"] != recorded.get("sha256")
            ):
                raise UserError(
                    f"{export}: this export was made from other weights than {path}/{current['file']} "
                    f"(the model was retrained or replaced); re-export with: "
                    f"bertcls export {path} --format onnx --output-dir {export}"
                )
        return cls.from_file(
            export / MODEL_FILE, threads, report, hint=f"bertcls export {path} --format onnx"
        )

    @classmethod
    def from_file(
        cls,
        file: str | os.PathLike,
        threads: int | None = None,
        report: dict | None = None,
        hint: str = "bertcls export MODEL_DIR --format onnx",
    ) -> OnnxModel:
        """A session over one ``.onnx`` file (CPU execution provider); a dynamic int8 one (``report``
        says) runs per text, ``threads`` texts at once."""
        ort = import_onnxruntime()
        file = Path(file)
        workers = 0
        if (report or {}).get("quantize") == "int8":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            workers = int(threads or cores or 1)
            threads = 1
        try:
            session = ort.InferenceSession(
                str(file), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own classes for bad protobufs / unknown ops
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(
                f"{file}: onnxruntime cannot load it ({first}); re-create it with: {hint}"
            ) from None
        return cls(session, file.parent, report, workers)

    def run(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        out = self.session.run([self.output_name], {k: feeds[k] for k in self.input_names})[0]
        return np.asarray(out, dtype=np.float32)

    def logits(self, encodings: list[dict], batch_size: int, pad_id: int) -> np.ndarray:
        """Logits in input order (float32), computed in length-sorted, dynamically padded batches.

        Padding goes on the right: the fused attention of the optimised graph derives sequence lengths
        from the mask and assumes that layout."""
        from bertcls.core.batching import sorted_batches

        if not encodings:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        if self.workers:
            return self._per_text(encodings)
        out: np.ndarray | None = None
        for idx in sorted_batches([len(e["input_ids"]) for e in encodings], batch_size=batch_size):
            rows = [encodings[i] for i in idx]
            width = max(len(r["input_ids"]) for r in rows)
            ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            tt = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                k = len(r["input_ids"])
                ids[i, :k] = r["input_ids"]
                tt[i, :k] = r.get("token_type_ids") or [0] * k
                mask[i, :k] = 1
            logits = self.run(ids, mask, tt)
            if out is None:
                out = np.zeros((len(encodings), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
        assert out is not None
        return out

    def _per_text(self, encodings: list[dict]) -> np.ndarray:
        """Each text in its own call (no padding, no batch-mates), ``workers`` calls at once: onnxruntime
        releases the GIL while it computes."""
        if self.workers == 1:  # one call at a time: a pool would only add a thread hand-off per text
            return np.stack([self._run_text(e) for e in encodings]).astype(np.float32)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bertcls-onnx")
        return np.stack(list(self._pool.map(self._run_text, encodings))).astype(np.float32)

    def _run_text(self, e: dict) -> np.ndarray:
        """One text's logits from a call of its own (no padding)."""
        ids = np.asarray([e["input_ids"]], dtype=np.int64)
        tt = np.asarray([e.get("token_type_ids") or [0] * ids.shape[1]], dtype=np.int64)
        return self.run(ids, np.ones_like(ids), tt)[0]

    def __repr__(self) -> str:
        return (
            f"OnnxModel({str(self.path / MODEL_FILE)!r}, quantize={self.report.get('quantize', 'unknown')!r})"
        )
