"""Reading rows from CSV, TSV, JSONL, Parquet and plain-text files, streaming, with errors that name
the file, the line and the fix: the byte-level half of ``core.data`` (decoding, CSV field limits, lone
surrogates, JSON objects), shared by training data, prediction input and pretraining corpora.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertcls.core.errors import UserError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "lines",
}


def _raise_csv_field_limit() -> None:
    """Python's csv refuses fields over 131,072 characters; texts can be longer (whole documents).
    The limit is a C long: sys.maxsize overflows it on Windows, so halve until it is accepted."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


_raise_csv_field_limit()


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{path}: unknown file type '{path.suffix}'; use .csv, .tsv, .jsonl or .parquet (or .txt for one text per line)"
        )
    return fmt


def _decoded_lines(fh, path: Path, encoding: str) -> Iterator[str]:
    """Decode line by line so a bad byte is reported with its line and column."""
    decoder_name = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        codec = codecs.lookup(decoder_name).name
    except LookupError:
        raise UserError(
            f"--encoding={encoding!r} is not a known text encoding; try utf-8, latin-1 or gbk"
        ) from None
    if codec.startswith(("utf-16", "utf-32")):  # a newline is not the byte 0x0a: split after decoding
        yield from _decoded_wide_lines(fh, path, encoding)
        return
    first = True
    for lineno, raw in enumerate(fh, start=1):
        try:
            line = raw.decode(decoder_name if first else decoder_name.replace("-sig", ""))
        except UnicodeDecodeError as e:
            raise UserError(
                f"{path}: line {lineno}, byte {e.start + 1}: not valid {encoding} ({raw[e.start : e.start + 4]!r}); "
                f"pass --encoding with the file's encoding (e.g. --encoding latin-1) or re-save it as UTF-8"
            ) from None
        if first:
            line = line.removeprefix("\ufeff")  # a BOM of utf-16-le/-be etc. is not part of the header
        first = False
        yield line


def _decoded_wide_lines(fh, path: Path, encoding: str, block: int = 1 << 16) -> Iterator[str]:
    """Lines of a UTF-16/UTF-32 file, decoded incrementally (the codec reads the BOM for the byte order)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    pending, lineno, first = "", 0, True
    while True:
        raw = fh.read(block)
        try:
            pending += decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as e:
            # Lines before the bad bytes: those already split off, in ``pending``, and in this block.
            before = e.object[: e.start].decode(e.encoding, errors="replace")
            where = lineno + pending.count("\n") + before.count("\n") + 1
            raise UserError(
                f"{path}: line {where}: not valid {encoding}; "
                f"pass --encoding with the file's encoding (e.g. --encoding utf-16-le) or re-save it as UTF-8"
            ) from None
        if first and pending:
            pending, first = pending.removeprefix("\ufeff"), False
        *lines, pending = pending.split("\n")
        for line in lines:
            lineno += 1
            yield line + "\n"
        if not raw:
            break
    if pending:
        yield pending


def _open_binary(path: Path):
    if str(path) == "-":
        return sys.stdin.buffer
    if not path.exists():
        raise UserError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a data file")
    return open(path, "rb")


def iter_records(
    path: str | Path, encoding: str = "utf-8", fmt: str | None = None
) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    """Return (column names, iterator of (row number, record)). Row numbers are file line numbers
    for text formats (header = line 1) and 1-based row indices for Parquet."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "parquet":
        return _iter_parquet(path)
    return records_from_lines(path, fmt, _decoded_lines(_open_binary(path), path, encoding))


def records_from_lines(
    path: Path, fmt: str, lines: Iterator[str]
) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    """``iter_records`` on lines already decoded (with their line ends), for callers that decode themselves."""
    if fmt in ("csv", "tsv"):
        return _iter_csv(path, lines, "," if fmt == "csv" else "\t")
    if fmt == "jsonl":
        return _iter_jsonl(path, lines)
    return ["text"], ((i, {"text": line.rstrip("\r\n")}) for i, line in enumerate(lines, start=1))


def _iter_csv(path: Path, lines: Iterator[str], delimiter: str):
    line_counter = {"n": 0}

    def counted() -> Iterator[str]:
        for line in lines:
            line_counter["n"] += 1
            yield line

    reader = csv.reader(counted(), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{path}: file is empty; expected a header row such as 'text,label'") from None
    except csv.Error as e:
        raise UserError(f"{path}: line 1: malformed header ({e}); check quoting") from None
    header = [h.strip() for h in header]

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        start = 2
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise UserError(
                    f"{path}: line {line_counter['n']}: malformed {'CSV' if delimiter == ',' else 'TSV'} ({e}); "
                    f"quote fields that contain the delimiter, quotes or newlines"
                ) from None
            lineno, start = start, line_counter["n"] + 1
            if not values:
                continue
            if len(values) != len(header):
                raise UserError(
                    f"{path}: line {lineno}: expected {len(header)} fields ({', '.join(header)}), found {len(values)}; "
                    f"quote fields that contain '{delimiter}'"
                )
            yield lineno, dict(zip(header, values))

    return header, rows()


def _iter_jsonl(path: Path, lines: Iterator[str]):
    # Peek at the first record to learn the columns without reading the whole file.
    def parse(lineno: int, line: str) -> dict[str, Any] | None:
        if not line.strip():
            return None
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(
                f"{path}: line {lineno}, column {e.colno}: malformed JSON ({e.msg}); "
                f"each line must be one JSON object"
            ) from None
        if not isinstance(rec, dict):
            raise UserError(
                f'{path}: line {lineno}: expected a JSON object like {{"text": ..., "label": ...}}'
            )
        if "\\u" in line:  # a lone surrogate can only arrive as a \uD8xx escape: decoded text has none
            _reject_surrogates(path, lineno, rec)
        return rec

    numbered = enumerate(lines, start=1)
    first: tuple[int, dict[str, Any]] | None = None
    for lineno, line in numbered:
        rec = parse(lineno, line)
        if rec is not None:
            first = (lineno, rec)
            break
    if first is None:
        raise UserError(f"{path}: file is empty; expected one JSON object per line")

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        yield first
        for lineno, line in numbered:
            rec = parse(lineno, line)
            if rec is not None:
                yield lineno, rec

    return list(first[1].keys()), rows()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_key(value: Any, key: str) -> str | None:
    """The key whose string holds a lone surrogate (half of a UTF-16 pair, not text), if any."""
    if isinstance(value, str):
        return key if _SURROGATE.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _surrogate_key(v, f"{key}.{k}" if key else str(k))
        if found:
            return found
    return None


def _reject_surrogates(path: Path, lineno: int, rec: dict[str, Any]) -> None:
    key = _surrogate_key(rec, "")
    if key:
        raise UserError(
            f"{path}: line {lineno}: field '{key}' contains a lone surrogate escape (\\ud800-\\udfff without "
            f"its pair), which is not text; remove it or re-export the file with valid Unicode"
        )


def _iter_parquet(path: Path):
    import pyarrow.parquet as pq

    if not path.exists():
        raise UserError(f"{path}: file not found; check the path")
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise UserError(f"{path}: not a readable Parquet file ({e})") from None
    names = list(pf.schema_arrow.names)

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        n = 0
        for batch in pf.iter_batches(batch_size=4096):
            for rec in batch.to_pylist():
                n += 1
                yield n, rec

    return names, rows()


def location(path: Path, fmt: str, row: int) -> str:
    return f"{path}: {'row' if fmt == 'parquet' else 'line'} {row}"
