"""``bertcls predict MODEL_DIR --file F``: label every row, streaming, output rows in input order.

Rows are read in chunks (``--chunk-size``), each chunk is batched by length internally and written out in
input order before the next is read, so files larger than memory work. Output goes to a temp file that is
renamed into place at the end (no half-written output on error)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bertcls.core.config import InferenceArgs, require
from bertcls.core.data import detect_format, iter_records
from bertcls.core.errors import UserError
from bertcls.core.io import atomic_open


@dataclass
class PredictConfig(InferenceArgs):
    file: str | None = None
    """Input file (.csv, .tsv, .jsonl, .parquet, or .txt with one text per line); default: stdin lines."""
    output: str | None = None
    """Output file (.csv or .jsonl); default: stdout."""
    format: Literal["auto", "csv", "jsonl"] = "auto"
    """Output format (auto: from --output's extension, CSV on stdout)."""
    text_column: str | None = None
    """Text column (default: the one used in training, else 'text')."""
    text_pair_column: str | None = None
    """Second text column for pair models (default: the one used in training)."""
    top_k: int = 1
    """How many labels (with probabilities) to write per row; 0 = all."""
    skip_empty: bool = False
    """Skip rows with empty text (they are then absent from the output) instead of failing."""
    encoding: str = "utf-8"
    """Text encoding of the input."""
    batch_size: int = 64
    """Texts per inference batch."""
    chunk_size: int = 4096
    """Rows read into memory at a time."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.top_k >= 0, "top_k", self.top_k, "must be >= 0 (0 = all labels)")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        require(self.chunk_size >= 1, "chunk_size", self.chunk_size, "must be >= 1")
        if self.output and self.format == "auto":
            suffix = Path(self.output).suffix.lower()
            require(
                suffix in (".csv", ".jsonl", ".ndjson"),
                "output",
                self.output,
                "name a .csv or .jsonl file, or pass --format",
            )


def _stdin_records() -> tuple[list[str], Iterator[tuple[int, dict]]]:
    stream = (
        io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="strict")
        if hasattr(sys.stdin, "buffer")
        else sys.stdin
    )

    def rows():
        try:
            for i, line in enumerate(stream, start=1):
                yield i, {"text": line.rstrip("\r\n")}
        except UnicodeDecodeError:
            raise UserError(
                "stdin: not valid UTF-8; convert the input with iconv or pass --file with --encoding"
            ) from None

    return ["text"], rows()


def _chunks(records, size: int):
    chunk = []
    for item in records:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(cfg: PredictConfig) -> dict:
    from bertcls.classifier import TextClassifier
    from bertcls.core.data import Columns, check_columns

    clf = TextClassifier.from_pretrained(
        cfg.model_dir, backend=cfg.backend, threads=cfg.threads, onnx_dir=cfg.onnx_dir
    )
    clf.batch_size = cfg.batch_size
    text_col = cfg.text_column or clf.meta.get("text_column") or "text"
    pair_col = cfg.text_pair_column or clf.meta.get("text_pair_column")
    if cfg.file and cfg.file != "-":
        fmt = detect_format(Path(cfg.file))
        if fmt == "lines":
            text_col, pair_col = "text", None
        names, records = iter_records(cfg.file, cfg.encoding, fmt)
        where = f"{cfg.file}: {'row' if fmt == 'parquet' else 'line'}"
    else:
        text_col, pair_col = "text", None
        names, records = _stdin_records()
        where = "stdin: line"
    check_columns(
        Path(cfg.file or "stdin"), names, Columns(text=text_col, text_pair=pair_col, label=None), False
    )
    out_fmt = (
        cfg.format
        if cfg.format != "auto"
        else ("jsonl" if cfg.output and Path(cfg.output).suffix.lower() in (".jsonl", ".ndjson") else "csv")
    )
    k = len(clf.labels) if cfg.top_k == 0 else min(cfg.top_k, len(clf.labels))

    n = 0
    sink = atomic_open(cfg.output, "w", newline="") if cfg.output else _stdout()
    with sink as f:
        writer = None
        for chunk in _chunks(records, cfg.chunk_size):
            keep = []
            for row, rec in chunk:
                text = rec.get(text_col)
                text = "" if text is None else str(text)
                if not text.strip():
                    if cfg.skip_empty:
                        continue
                    raise UserError(
                        f"{where} {row}: empty text in column '{text_col}'; fill it in or pass --skip-empty"
                    )
                keep.append((row, rec, text))
            if not keep:
                continue
            pairs = [str(r.get(pair_col) or "") for _, r, _ in keep] if pair_col else None
            probs = clf.predict_proba([t for _, _, t in keep], pairs)
            labels = clf.decide(probs)
            for (_, rec, _), p, lab in zip(keep, probs, labels):
                top = np.argsort(-p, kind="stable")[:k]
                out = dict(rec)
                out["label"] = ";".join(lab) if isinstance(lab, list) else lab
                out["score"] = round(
                    float(p[clf.labels.index(lab)])
                    if not isinstance(lab, list)
                    else float(max((p[clf.labels.index(x)] for x in lab), default=0.0)),
                    6,
                )
                if out_fmt == "jsonl":
                    if k > 1:
                        out["top_k"] = [{"label": clf.labels[j], "score": round(float(p[j]), 6)} for j in top]
                    f.write(json.dumps(out, ensure_ascii=False, default=str) + "\n")
                else:
                    for rank, j in enumerate(top[1:] if k > 1 else [], start=2):
                        out[f"label_{rank}"] = clf.labels[j]
                        out[f"score_{rank}"] = round(float(p[j]), 6)
                    if writer is None:
                        writer = csv.DictWriter(f, fieldnames=list(out.keys()), extrasaction="ignore")
                        writer.writeheader()
                    writer.writerow(out)
                n += 1
    return {"rows": n, "output": cfg.output or "stdout"}


class _stdout:
    def __enter__(self):
        return sys.stdout

    def __exit__(self, *a):
        sys.stdout.flush()
        return False


def summarize(result: dict) -> str:
    if result["output"] == "stdout":
        return ""
    return f"wrote {result['rows']} predictions to {result['output']}"
