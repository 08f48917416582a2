"""``bertcls augment``: new training texts from a labelled file, written beside the originals.

Reads top to bottom: setup (read the file, check the output path), loop (N new texts per row with the
chosen method, seeded), save (one CSV: every original row first, then the new rows, each with the input's
columns, the text replaced, and two more: ``augmentation`` — ``original`` or the method — and
``augmented_from``, the source row's line number, so nothing is confused with real data). The methods are
in ``train.augmenters``; `bertcls train --augment METHOD:N` uses the same code on the training split only.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bertcls.core.config import require
from bertcls.core.errors import UserError
from bertcls.core.io import atomic_write_text
from bertcls.core.options import check_augment_options
from bertcls.core.readers import iter_records
from bertcls.train.augmenters import augment_texts

log = logging.getLogger("bertcls")
MARK, FROM = "augmentation", "augmented_from"


@dataclass
class AugmentConfig:
    file: str | None = None
    """Labelled CSV/TSV/JSONL file to augment (its training rows only: never a validation or test file)."""
    output: str | None = None
    """CSV to write: the original rows, then the new ones (columns augmentation and augmented_from mark them)."""
    method: Literal["eda", "mlm"] = "eda"
    """eda: synonym replacement, random insertion, swap and deletion (WordNet for English, Cilin for Chinese, both offline); mlm: words replaced by a masked-language model's guesses (--augment-model)."""
    per_text: int = 4
    """New texts per input row (fewer where a text is too short or nothing changes: counted in the summary)."""
    alpha: float = 0.1
    """Share of the words each new text changes (EDA's alpha; at least one word)."""
    augment_model: str | None = None
    """mlm: a model directory with a masked-language-model head (e.g. one from bertcls pretrain)."""
    text_column: str = "text"
    """Column with the text to augment (the other columns are copied)."""
    encoding: str = "utf-8"
    """Encoding of --file."""
    seed: int = 42
    """The same seed gives the same texts."""
    overwrite: bool = False
    """Replace --output if it is an earlier 'bertcls augment' result (any other file is never replaced)."""

    def __post_init__(self) -> None:
        require(bool(self.file), "file", self.file, "is required: the labelled file to augment")
        require(bool(self.output), "output", self.output, "is required: the CSV to write")
        require(self.per_text >= 1, "per_text", self.per_text, "must be >= 1")
        check_augment_options(self.method, self.augment_model, self.alpha, alpha_field="alpha")


def check_output(cfg: AugmentConfig) -> Path:
    src, out = Path(cfg.file), Path(cfg.output)
    if not src.is_file():
        raise UserError(f"--file={src}: not found; give the labelled training file to augment")
    if out.resolve() == src.resolve():
        raise UserError(f"--output={out} is the input file; write the augmented rows to another file")
    if out.exists():
        ours = out.is_file() and MARK in _header(out)
        if not (cfg.overwrite and ours):
            why = (
                "add --overwrite" if ours else "it is not an earlier 'bertcls augment' output, so it is kept"
            )
            raise UserError(f"--output={out} exists; {why} (or choose another --output)")
    if not out.parent.is_dir():
        raise UserError(f"--output={out}: folder {out.parent} does not exist")
    return out


def _header(path: Path) -> str:
    """The first line only: an earlier output can be large."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readline()


def run(cfg: AugmentConfig) -> dict:
    # ---- setup
    out = check_output(cfg)
    names, records = iter_records(cfg.file, cfg.encoding)
    if cfg.text_column not in names:
        raise UserError(
            f"{cfg.file}: no column '{cfg.text_column}' (columns: {', '.join(names)}); set --text-column"
        )
    rows = list(records)
    if not rows:
        raise UserError(f"{cfg.file}: no rows to augment")
    texts = [str(r.get(cfg.text_column) or "") for _, r in rows]

    # ---- loop
    log.info("augmenting %d texts from %s (%s, %d each)", len(texts), cfg.file, cfg.method, cfg.per_text)
    new = augment_texts(texts, cfg.method, cfg.per_text, cfg.seed, cfg.alpha, cfg.augment_model)

    # ---- save
    fields = [n for n in names if n not in (MARK, FROM)] + [MARK, FROM]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for _, rec in rows:
        w.writerow({**rec, MARK: "original", FROM: ""})
    for (line, rec), copies in zip(rows, new):
        for text in copies:
            w.writerow({**rec, cfg.text_column: text, MARK: cfg.method, FROM: line})
    atomic_write_text(out, buf.getvalue())
    n_new = sum(len(c) for c in new)
    return {
        "file": cfg.file,
        "output": str(out),
        "method": cfg.method,
        "original_rows": len(rows),
        "new_rows": n_new,
        "unchanged": sum(1 for c in new if not c),
        "short_of_n": sum(1 for c in new if 0 < len(c) < cfg.per_text),
    }


def summarize(result: dict) -> str:
    return (
        f"{result['new_rows']} new texts ({result['method']}) from {result['original_rows']} rows of "
        f"{result['file']}, written with the originals to {result['output']}; {result['unchanged']} texts "
        f"gave none (too short, or nothing to change), {result['short_of_n']} fewer than asked"
    )
