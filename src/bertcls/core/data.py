"""Labelled text for training and evaluation: columns, labels (single- and multi-label, missing-value
tokens), validation splits. Rows come from ``core.readers`` (streamed, decoded, checked); training data is
collected into a :class:`TextData`. Labels stay the strings the user wrote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bertcls.core.errors import UserError, warn
from bertcls.core.readers import detect_format, iter_records, location

MULTI_LABEL_SEP = ";"
# Label cells that spreadsheets and pandas write for "no value"; compared case-insensitively.
MISSING_LABEL_TOKENS = ("nan", "null", "none", "na", "n/a", "<na>", "#n/a")
MissingLabels = Literal["error", "skip", "keep"]


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
                    f"{location(path, fmt, row)}: label is a list but --multi-label is not set; "
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


def read_unlabeled(path: str | Path | None, text_column: str, encoding: str, flag: str) -> list[str]:
    """Unlabelled texts (distill's and self-train's --unlabeled-file): a .txt file, one text per line, or a
    data file's ``text_column`` (a label column, if there is one, is not read). Empty texts are skipped."""
    if not path:
        return []
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{flag}={path}: file not found")
    if detect_format(path) == "lines":  # the readers' decoding: a bad byte is their one-line error
        _, records = iter_records(path, encoding, "lines")
        return [t for _, r in records if (t := r["text"].strip())]
    cols = Columns(text=text_column, label=None)
    return load(path, cols, encoding=encoding, need_label=False, skip_empty=True).texts
