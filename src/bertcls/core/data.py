"""Reading labelled and unlabelled text from CSV, TSV, JSONL and Parquet, with errors that name the place.

Rows stream from disk (``iter_rows``) so prediction works on files larger than memory; training data is
collected into a :class:`TextData`. Labels stay the strings the user wrote.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bertcls.core.errors import UserError, warn

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
MULTI_LABEL_SEP = ";"
# Label cells that spreadsheets and pandas write for "no value"; compared case-insensitively.
MISSING_LABEL_TOKENS = ("nan", "null", "none", "na", "n/a", "<na>", "#n/a")
MissingLabels = Literal["error", "skip", "keep"]


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


@dataclass
class Columns:
    text: str = "text"
    text_pair: str | None = None
    label: str | None = "label"


@dataclass
class TextData:
    """Texts (and optional second texts) with labels; ``rows`` are 1-based line/row numbers for messages."""

    texts: list[str]
    pairs: list[str] | None = None
    labels: list[Any] | None = None  # str for single-label, list[str] for multi-label
    rows: list[int] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Iterable[int]) -> TextData:
        idx = list(idx)
        return TextData(
            texts=[self.texts[i] for i in idx],
            pairs=[self.pairs[i] for i in idx] if self.pairs is not None else None,
            labels=[self.labels[i] for i in idx] if self.labels is not None else None,
            rows=[self.rows[i] for i in idx] if self.rows else [],
            source=self.source,
        )

    def label_set(self) -> set[str]:
        if self.labels is None:
            return set()
        out: set[str] = set()
        for lab in self.labels:
            out.update(lab if isinstance(lab, list) else [lab])
        return out


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


def _where(path: Path, fmt: str, row: int) -> str:
    return f"{path}: {'row' if fmt == 'parquet' else 'line'} {row}"


def check_columns(path: Path, available: list[str], cols: Columns, need_label: bool) -> None:
    wanted = [("--text-column", cols.text)]
    if cols.text_pair:
        wanted.append(("--text-pair-column", cols.text_pair))
    if need_label and cols.label:
        wanted.append(("--label-column", cols.label))
    for opt, name in wanted:
        if name not in available:
            raise UserError(
                f"{path}: no column '{name}' (columns are: {', '.join(map(str, available))}); pass {opt} with one of them"
            )


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _parse_label(value: Any, multi_label: bool) -> Any:
    if value is None:
        return None
    if multi_label:
        if isinstance(value, list):
            items = [_as_text(v).strip() for v in value]
        else:
            items = [p.strip() for p in _as_text(value).split(MULTI_LABEL_SEP)]
        items = [i for i in items if i]
        return sorted(set(items))
    if isinstance(value, list):
        return None  # reported by the caller as a list where one label was expected
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _as_text(value).strip()
    return text or None


def _listed_twice(value: Any) -> bool:
    items = value if isinstance(value, list) else _as_text(value).split(MULTI_LABEL_SEP)
    items = [_as_text(v).strip() for v in items]
    items = [i for i in items if i]
    return len(items) != len(set(items))


def _summarise_rows(where: str, rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:10]))
    return f"{where} {shown}{' ...' if len(rows) > 10 else ''}"


def _is_missing_token(label: Any) -> bool:
    items = label if isinstance(label, list) else [label]
    return any(str(i).casefold() in MISSING_LABEL_TOKENS for i in items)


def load(
    path: str | Path,
    cols: Columns,
    *,
    encoding: str = "utf-8",
    multi_label: bool = False,
    need_label: bool = True,
    skip_empty: bool = False,
    missing_labels: MissingLabels = "error",
) -> TextData:
    """Read a whole labelled (or unlabelled) file into memory with full validation.

    ``missing_labels`` decides about rows whose label is empty or one of :data:`MISSING_LABEL_TOKENS`:
    ``error`` refuses the file naming the lines, ``skip`` drops the rows (with a warning), ``keep``
    takes the tokens as class names (empty cells are still refused: there is no class to keep)."""
    path = Path(path)
    fmt = detect_format(path) if str(path) != "-" else "lines"
    names, records = iter_records(path, encoding, fmt)
    check_columns(path, names, cols, need_label)
    texts: list[str] = []
    pairs: list[str] | None = [] if cols.text_pair else None
    labels: list[Any] | None = [] if need_label and cols.label else None
    rows: list[int] = []
    empty: list[int] = []
    no_label: list[int] = []
    token_label: list[int] = []
    skipped: list[int] = []
    duplicated: list[int] = []
    unit = "row" if fmt == "parquet" else "line"
    for row, rec in records:
        text = _as_text(rec.get(cols.text))
        pair = _as_text(rec.get(cols.text_pair)) if cols.text_pair else None
        if not text.strip() or (cols.text_pair and not pair.strip()):
            empty.append(row)
            if skip_empty:
                continue
        if labels is not None:
            raw = rec.get(cols.label)
            if isinstance(raw, list) and not multi_label:
                raise UserError(
                    f"{_where(path, fmt, row)}: label is a list but --multi-label is not set; "
                    f"pass --multi-label or give one label per row"
                )
            lab = _parse_label(raw, multi_label)
            # A multi-label row may have no label at all (an empty cell, [] in JSONL): a text that is
            # none of the labels is real data (a neutral tweet), not a missing value.
            missing = lab is None
            if multi_label and lab and _listed_twice(raw):
                duplicated.append(row)
            token = not missing and missing_labels != "keep" and _is_missing_token(lab)
            if (missing or token) and missing_labels == "skip":
                skipped.append(row)
                continue
            if missing or token:
                (no_label if missing else token_label).append(row)
                continue
            labels.append(lab)
        texts.append(text)
        if pairs is not None:
            pairs.append(pair)  # type: ignore[arg-type]
        rows.append(row)
    if empty and not skip_empty:
        raise UserError(
            f"{path}: {len(empty)} row(s) with empty text at {_summarise_rows(unit, empty)}; "
            f"fill them in or pass --skip-empty to drop them"
        )
    if no_label:
        raise UserError(
            f"{path}: {len(no_label)} row(s) with no value in column '{cols.label}' at "
            f"{_summarise_rows(unit, no_label)}; give every row a label, or pass --missing-labels skip "
            f"to drop those rows"
        )
    if token_label:
        raise UserError(
            f"{path}: {len(token_label)} row(s) whose label in column '{cols.label}' reads as a missing value "
            f"(NaN, null, None, NA, N/A) at {_summarise_rows(unit, token_label)}; pass --missing-labels skip "
            f"to drop those rows, or --missing-labels keep if they are real class names"
        )
    if duplicated:
        warn(
            f"{path}: {len(duplicated)} row(s) list a label more than once in column '{cols.label}' at "
            f"{_summarise_rows(unit, duplicated)}; each label counts once"
        )
    if skipped:
        warn(
            f"{path}: skipped {len(skipped)} row(s) with a missing label (empty, NaN, null, None, NA, N/A) "
            f"at {_summarise_rows(unit, skipped)}"
        )
    if not texts:
        raise UserError(f"{path}: no rows with text; the file has a header but no data")
    return TextData(texts=texts, pairs=pairs, labels=labels, rows=rows, source=str(path))


def label_counts(data: TextData) -> Counter:
    c: Counter = Counter()
    for lab in data.labels or []:
        c.update(lab if isinstance(lab, list) else [lab])
    return c


def split_validation(
    data: TextData, fraction: float, seed: int, multi_label: bool
) -> tuple[TextData, TextData]:
    """Carve a seeded, stratified (single-label) validation split out of train."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(data)))
    stratify = None
    if not multi_label and data.labels is not None:
        counts = Counter(data.labels)
        if min(counts.values()) >= 2:
            stratify = data.labels
    n_val = max(1, int(round(len(idx) * fraction)))
    if stratify is not None:
        n_val = max(n_val, len(set(stratify)))
    train_idx, val_idx = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return data.subset(sorted(train_idx)), data.subset(sorted(val_idx))
