"""The rows `bertcls predict` writes, shared by its engines (``predict``: this process, streaming;
``predict_ray``: Ray Data actors): which prediction columns, under which prefix, and each input record
with its predictions added, so both engines write the same columns and values."""

from __future__ import annotations

import numpy as np

from bertcls.core.errors import UserError, warn


def input_fields(cfg, meta: dict, n_labels: int, plain_lines: bool) -> tuple[str, str | None, int]:
    """The text column, the pair column and how many labels each row gets: the flags, else what training
    saved; plain text lines (stdin, .txt) have one 'text' column and no pair."""
    text_col = "text" if plain_lines else cfg.text_column or meta.get("text_column") or "text"
    pair_col = None if plain_lines else cfg.text_pair_column or meta.get("text_pair_column")
    k = n_labels if cfg.top_k == 0 else min(cfg.top_k, n_labels)
    return text_col, pair_col, k


def chunks(records, size: int):
    chunk = []
    for item in records:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prediction_columns(prefix: str, k: int, out_fmt: str) -> list[str]:
    """The columns predict adds to each row, in output order."""
    cols = [f"{prefix}label", f"{prefix}score"]
    if out_fmt == "jsonl":
        return cols + ([f"{prefix}top_k"] if k > 1 else [])
    for rank in range(2, k + 1):
        cols += [f"{prefix}label_{rank}", f"{prefix}score_{rank}"]
    return cols


def choose_prefix(requested: str | None, columns, k: int, out_fmt: str, source: str) -> str:
    """--output-prefix, or by default none unless the input already has a column of that name (the
    'label' column of a labelled test file is the common case): then 'pred_', so no input column is
    lost and predicting on a labelled file needs no flag."""
    if requested is not None:
        return requested
    clash = [c for c in prediction_columns("", k, out_fmt) if c in columns]
    if not clash:
        return ""
    prefix = "pred_"
    while any(c in columns for c in prediction_columns(prefix, k, out_fmt)):
        prefix += "pred_"
    warn(
        f"{source}: input column '{clash[0]}' is kept; the predictions go to "
        f"'{prefix}label', '{prefix}score', ... (--output-prefix sets the prefix)"
    )
    return prefix


def check_clash(where: str, columns, predicted: list[str]) -> None:
    """Refuse an input column that a prediction column would overwrite."""
    clash = [c for c in predicted if c in columns]
    if clash:
        raise UserError(
            f"{where}: input column '{clash[0]}' has the name of a prediction column; pass --output-prefix "
            f"(e.g. --output-prefix pred_ writes pred_label, pred_score, ...) so both are kept"
        )


def predicted_rows(cfg, clf, records, where: str, text_col: str, pair_col, k: int, out_fmt: str, prefix: str):
    """Input records with their prediction columns added, in input order, one chunk at a time."""
    for chunk in chunks(records, cfg.chunk_size):
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
            keep.append((rec, text))
        if not keep:
            continue
        pairs = [str(r.get(pair_col) or "") for r, _ in keep] if pair_col else None
        probs = clf.predict_proba([t for _, t in keep], pairs)
        labels = clf.decide(probs)
        for (rec, _), p, lab in zip(keep, probs, labels):
            top = np.argsort(-p, kind="stable")[:k]
            out = dict(rec)
            out[f"{prefix}label"] = ";".join(lab) if isinstance(lab, list) else lab
            out[f"{prefix}score"] = round(
                float(p[clf.labels.index(lab)])
                if not isinstance(lab, list)
                else float(max((p[clf.labels.index(x)] for x in lab), default=0.0)),
                6,
            )
            if out_fmt == "jsonl":
                if k > 1:
                    out[f"{prefix}top_k"] = [
                        {"label": clf.labels[j], "score": round(float(p[j]), 6)} for j in top
                    ]
            else:
                for rank, j in enumerate(top[1:] if k > 1 else [], start=2):
                    out[f"{prefix}label_{rank}"] = clf.labels[j]
                    out[f"{prefix}score_{rank}"] = round(float(p[j]), 6)
            yield out
