"""``bertcls predict MODEL_DIR --file F``: label every row, streaming, output rows in input order.

Rows are read in chunks (``--chunk-size``), each chunk is batched by length internally and written out in
input order before the next is read, so files larger than memory work. Output goes to a temp file that is
renamed into place at the end (no half-written output on error).

Every input column is kept; the prediction columns (``label``, ``score``, ``label_2``/``score_2``... in CSV,
``top_k`` in JSONL) follow them, with ``--output-prefix`` in front. An input column with the name of a
prediction column is never overwritten: then the prediction columns get the prefix ``pred_`` (said on
stderr), unless ``--output-prefix`` is given, and a clash with that is refused. CSV output of JSONL input
has every key of every row."""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bertcls.core.config import require
from bertcls.core.errors import UserError
from bertcls.core.io import atomic_open
from bertcls.core.options import InferenceArgs
from bertcls.core.readers import detect_format, iter_records
from bertcls.deploy.predict_rows import (
    check_clash,
    choose_prefix,
    input_fields,
    predicted_rows,
    prediction_columns,
)


@dataclass
class PredictConfig(InferenceArgs):
    file: str | None = None
    """Input file (.csv, .tsv, .jsonl, .parquet, or .txt with one text per line); default: stdin lines."""
    output: str | None = None
    """Output file (.csv or .jsonl); default: stdout."""
    format: Literal["auto", "csv", "jsonl", "parquet"] = "auto"
    """Output format (auto: from --output's extension, CSV on stdout; with --engine ray: the input's format, CSV for text files). parquet: --engine ray only."""
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
    engine: Literal["local", "ray"] = "local"
    """local: this process, streaming. ray: Ray Data (`pip install 'bertcls[ray]'`) on the cluster at $RAY_ADDRESS, else on a local Ray started for the command; --file is a file or a directory of files, --output a new directory of shards."""
    num_workers: int | None = None
    """--engine ray: model replicas (Ray actors), each with --threads threads (default 1). Default: the CPUs Ray has, less one for reading and writing, / --threads."""
    output_prefix: str | None = None
    """Prefix for the prediction columns (label, score, label_2, score_2, ..., top_k), e.g. pred_. Every input column is kept, never overwritten. Default: none, or pred_ when an input column has a prediction column's name (a labelled test file's 'label'; said on stderr). An explicit prefix that still clashes is refused."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.top_k >= 0, "top_k", self.top_k, "must be >= 0 (0 = all labels)")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        require(self.chunk_size >= 1, "chunk_size", self.chunk_size, "must be >= 1")
        require(
            self.num_workers is None or self.num_workers >= 1, "num_workers", self.num_workers, "must be >= 1"
        )
        if self.engine == "ray":
            require(
                bool(self.file) and self.file != "-", "file", self.file, "--engine ray reads files, not stdin"
            )
            require(
                bool(self.output), "output", self.output, "--engine ray writes a directory: give --output DIR"
            )
            return
        require(self.num_workers is None, "num_workers", self.num_workers, "is for --engine ray")
        require(self.format != "parquet", "format", self.format, "parquet output needs --engine ray")
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


def run(cfg: PredictConfig) -> dict:
    if cfg.engine == "ray":  # the same rows, on Ray Data (deploy.predict_ray)
        from bertcls.deploy import predict_ray

        return predict_ray.run(cfg)
    from bertcls.classifier import TextClassifier
    from bertcls.core.data import Columns, check_columns

    clf = TextClassifier.from_args(cfg)
    clf.batch_size = cfg.batch_size
    in_fmt = "lines"
    if cfg.file and cfg.file != "-":
        in_fmt = detect_format(Path(cfg.file))
        names, records = iter_records(cfg.file, cfg.encoding, in_fmt)
        where = f"{cfg.file}: {'row' if in_fmt == 'parquet' else 'line'}"
    else:
        names, records = _stdin_records()
        where = "stdin: line"
    text_col, pair_col, k = input_fields(cfg, clf.meta, len(clf.labels), in_fmt == "lines")
    source = cfg.file if cfg.file and cfg.file != "-" else "stdin"
    check_columns(Path(source), names, Columns(text=text_col, text_pair=pair_col, label=None), False)
    out_fmt = (
        cfg.format
        if cfg.format != "auto"
        else ("jsonl" if cfg.output and Path(cfg.output).suffix.lower() in (".jsonl", ".ndjson") else "csv")
    )
    prefix = choose_prefix(cfg.output_prefix, names, k, out_fmt, source)
    predicted = prediction_columns(prefix, k, out_fmt)
    if in_fmt == "jsonl":  # each JSON object may bring keys the first one lacked: check every row
        records = _checked_keys(records, where, predicted)
    else:
        check_clash(source, names, predicted)
    rows = predicted_rows(cfg, clf, records, where, text_col, pair_col, k, out_fmt, prefix)

    counter = _Counter(rows)
    sink = atomic_open(cfg.output, "w", newline="") if cfg.output else _stdout()
    with sink as f:
        if out_fmt == "jsonl":
            for out in counter:
                f.write(json.dumps(out, ensure_ascii=False, default=str) + "\n")
        elif in_fmt == "jsonl":
            _write_csv_spooled(f, counter, predicted)
        else:
            _write_csv(f, counter, list(names) + predicted)
    return {"rows": counter.n, "output": cfg.output or "stdout"}


def _checked_keys(records, where: str, predicted: list[str]):
    for row, rec in records:
        check_clash(f"{where} {row}", rec, predicted)
        yield row, rec


class _Counter:
    """Counts the rows an iterator yields (the writers consume it)."""

    def __init__(self, rows):
        self.rows, self.n = rows, 0

    def __iter__(self):
        for row in self.rows:
            self.n += 1
            yield row


def _csv_value(value):
    # Lists and objects from JSONL input stay JSON in a CSV cell (not Python's repr).
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (dict, list)) else value


def _write_csv(f, rows, columns: list[str]) -> None:
    writer = csv.DictWriter(f, fieldnames=columns, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(v) for c, v in row.items()})


def _write_csv_spooled(f, rows, predicted: list[str]) -> None:
    """CSV from rows whose keys vary (JSONL input): the header must hold every key of every row, known
    only at the end, so rows are spooled to a temp JSONL file first. Memory holds just the key names."""
    keys: dict[str, None] = {}  # insertion-ordered set: columns in first-seen order
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for row in rows:
            keys.update(dict.fromkeys(c for c in row if c not in predicted))
            spool.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        spool.seek(0)
        _write_csv(f, (json.loads(line) for line in spool), list(keys) + predicted)


class _stdout:
    def __enter__(self):
        return sys.stdout

    def __exit__(self, *a):
        sys.stdout.flush()
        return False


def summarize(result: dict) -> str:
    if "workers" in result:
        from bertcls.deploy.predict_ray import summarize as ray_summary

        return ray_summary(result)
    if result["output"] == "stdout":
        return ""
    return f"wrote {result['rows']} predictions to {result['output']}"
