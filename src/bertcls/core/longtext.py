"""Texts longer than the model's window: truncate, head+tail, or chunks pooled into one prediction.

- ``truncate``: the first tokens only (BERT's default; everything past the window is never seen).
- ``head-tail``: the first H and the last T tokens of segment A, H + T filling the window. Sun et al.
  (2019, "How to fine-tune BERT for text classification?") found head 128 + tail 382 best on IMDb: the
  default head is a quarter of the window, which is that ratio.
- ``chunks``: windows of the whole text with an overlap (``stride`` tokens shared by neighbours). In
  training every window is a row carrying its document's label; at inference the windows' logits are pooled
  into one row per document (``mean`` or ``max`` over windows), all windows batched together.

Sentence pairs keep segment B whole (cut to half the window if it alone would fill it) and apply the
strategy to segment A. Each text is tokenised once, without special tokens and without truncation (fast
tokenizer, linear in the text's length); windows are then slices of that one token list, so a 100k-character
text costs one tokenisation plus one pass of slicing, never a re-tokenisation per window.

Written here rather than with ``return_overflowing_tokens``: the fast tokenizer's overflow keeps segment B
in every window only for ``only_first`` truncation, has no head+tail mode, and would tokenise a second time
for the truncate path's word-boundary behaviour; slicing one token list serves all three strategies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bertcls.core.errors import UserError

STRATEGIES = ("truncate", "head-tail", "chunks")
POOLINGS = ("mean", "max")


@dataclass
class LongText:
    """How a text longer than the window is read; saved in bertcls.json (``long_text``)."""

    strategy: str = "truncate"
    head_tokens: int | None = None  # head-tail: tokens kept from the start (default: a quarter of the window)
    stride: int | None = None  # chunks: tokens shared by neighbouring windows (default: a quarter)
    pooling: str = "mean"  # chunks: how window logits become one document's logits

    def check(self, max_length: int) -> LongText:
        """One-line errors naming the flag; returns self with the defaults resolved for ``max_length``."""
        if self.strategy not in STRATEGIES:
            raise UserError(
                f"--long-text={self.strategy!r} is invalid: choose one of {', '.join(STRATEGIES)}"
            )
        if self.pooling not in POOLINGS:
            raise UserError(f"--pooling={self.pooling!r} is invalid: choose one of {', '.join(POOLINGS)}")
        window = max_length - 2  # [CLS] and [SEP]
        if self.head_tokens is not None and not 0 <= self.head_tokens <= window:
            raise UserError(
                f"--head-tokens={self.head_tokens} is invalid: head and tail share the {window} text tokens of "
                f"--max-length {max_length}; use 0..{window}"
            )
        if self.stride is not None and not 0 <= self.stride < window:
            raise UserError(
                f"--stride={self.stride} is invalid: the overlap must be smaller than the {window}-token "
                f"window of --max-length {max_length}; use 0..{window - 1}"
            )
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict) -> LongText:
        saved = meta.get("long_text") or {}
        return cls(**{k: saved[k] for k in ("strategy", "head_tokens", "stride", "pooling") if k in saved})


def windows(n: int, budget: int, lt: LongText) -> list[tuple[int, int]]:
    """(start, end) slices of a segment of ``n`` tokens that fit ``budget`` tokens, per strategy;
    head-tail returns the head slice and the tail slice (both read, in order, as one row)."""
    if n <= budget or lt.strategy == "truncate":
        return [(0, min(n, budget))]
    if lt.strategy == "head-tail":
        head = budget // 4 if lt.head_tokens is None else min(lt.head_tokens, budget)
        return [(0, head), (n - (budget - head), n)]
    stride = budget // 4 if lt.stride is None else min(lt.stride, budget - 1)
    step = budget - stride
    starts = list(range(0, n - stride, step)) or [0]
    return [(s, min(s + budget, n)) for s in starts]


def encode_long(
    tokenizer, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int, lt: LongText
) -> list[dict]:
    """Model rows for ``texts`` (+ ``pairs``): one per text, or several for ``chunks``; each row has
    ``doc``, the index of its text."""
    if lt.strategy == "truncate":
        from bertcls.core.batching import encode

        rows = encode(tokenizer, texts, pairs, max_length)
        for i, r in enumerate(rows):
            r["doc"] = i
        return rows
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise UserError(f"--long-text {lt.strategy} needs a BERT-style tokenizer with [CLS] and [SEP] tokens")

    def ids(batch: Sequence[str]) -> list[list[int]]:
        return tokenizer(list(batch), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    a_ids = ids(texts)
    b_ids = ids(pairs) if pairs is not None else [None] * len(a_ids)
    rows = []
    for doc, (a, b) in enumerate(zip(a_ids, b_ids)):
        tail = []
        if b is not None:
            tail = b[: (max_length - 3) // 2] if len(b) > (max_length - 3) // 2 else b
        budget = max_length - 2 - (len(tail) + 1 if b is not None else 0)
        spans = windows(len(a), budget, lt)
        if lt.strategy == "head-tail" and len(spans) == 2:
            spans = [(spans[0], spans[1])]  # one row made of both slices
        else:
            spans = [(s,) for s in spans]
        for parts in spans:
            seg_a = [t for s, e in parts for t in a[s:e]]
            input_ids = [cls_id, *seg_a, sep_id]
            types = [0] * len(input_ids)
            if b is not None:
                input_ids += [*tail, sep_id]
                types += [1] * (len(tail) + 1)
            rows.append({"input_ids": input_ids, "token_type_ids": types, "doc": doc})
    return rows


def pool(logits: np.ndarray, rows: list[dict], n_docs: int, how: str = "mean") -> np.ndarray:
    """One row of logits per document from its windows' logits (mean or max per label)."""
    docs = np.fromiter((r["doc"] for r in rows), dtype=np.int64, count=len(rows))
    if len(docs) == n_docs and (docs == np.arange(n_docs)).all():
        return logits
    out = np.full((n_docs, logits.shape[1]), -np.inf if how == "max" else 0.0, dtype=np.float32)
    if how == "max":
        np.maximum.at(out, docs, logits)
    else:
        np.add.at(out, docs, logits)
        out /= np.bincount(docs, minlength=n_docs)[:, None]
    return out


def chunk_counts(rows: list[dict], n_docs: int) -> list[int]:
    """How many windows each document was read in."""
    docs = np.fromiter((r["doc"] for r in rows), dtype=np.int64, count=len(rows))
    return np.bincount(docs, minlength=n_docs).tolist()
