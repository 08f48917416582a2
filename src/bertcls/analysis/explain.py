"""``bertcls explain MODEL_DIR --text T | --file F``: which words made the model say what it said.

Writes a run directory: ``report.html`` (each text with its words highlighted, the prediction and the
probabilities; self-contained), ``explanations.jsonl`` (per text: words with character offsets, scores
per explained label, completeness error for IG), ``explain_config.yaml``; with ``--summary`` also
``summary.csv`` and ``summary.png`` (the words that push hardest towards each label across the file).
Methods and word alignment: ``bertcls.analysis.attribution``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bertcls.core.config import require, save_yaml
from bertcls.core.errors import UserError, warn
from bertcls.core.io import atomic_write_text, staged_dir
from bertcls.core.options import InferenceArgs
from bertcls.core.rundir import check_output_dir

CONFIG_FILE = "explain_config.yaml"  # core.rundir.RECOGNISE knows an earlier report by it


@dataclass
class ExplainConfig(InferenceArgs):
    text: str | None = None
    """One text to explain."""
    text_pair: str | None = None
    """Its second text, for sentence-pair models."""
    file: str | None = None
    """Texts to explain (.csv, .tsv, .jsonl, .parquet, or .txt with one text per line)."""
    text_column: str | None = None
    """Text column of --file (default: the one used in training, else 'text')."""
    text_pair_column: str | None = None
    """Second text column for pair models (default: the one used in training)."""
    encoding: str = "utf-8"
    """Text encoding of --file."""
    method: Literal["ig", "occlusion"] = "ig"
    """ig = Integrated Gradients on the word-piece embeddings (torch backend); occlusion = the drop in probability when each word is deleted (any backend, ONNX included)."""
    target: str | None = None
    """Explain this label (default: the predicted one; every predicted label for multi-label)."""
    steps: int = 32
    """Integrated Gradients steps (more: smaller completeness error, slower)."""
    zh_words: Literal["chars", "jieba"] = "chars"
    """Chinese text: attribute to characters, or to jieba words (needs bertcls[zh])."""
    max_texts: int = 500
    """Explain at most this many rows of --file (the first ones)."""
    summary: bool = False
    """Also write the words that push hardest towards each label across --file (summary.csv, summary.png)."""
    top: int = 15
    """Words per label in --summary."""
    output_dir: str | None = None
    """Where to write the report (default: MODEL_DIR/explain-<file name>, or MODEL_DIR/explain-text)."""
    output: str | None = None
    """Also write the HTML report to this file (a new .html file; an existing file is never replaced)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.text is None or bool(self.text.strip()),
            "text",
            self.text,
            "is empty; give a text with words",
        )
        require(
            (self.text is None) != (self.file is None),
            "text",
            self.text,
            "give exactly one of --text or --file",
        )
        require(
            self.text_pair is None or self.text is not None, "text_pair", self.text_pair, "goes with --text"
        )
        require(self.steps >= 2, "steps", self.steps, "must be >= 2")
        require(self.max_texts >= 1, "max_texts", self.max_texts, "must be >= 1")
        require(self.top >= 1, "top", self.top, "must be >= 1")
        require(not self.summary or self.file is not None, "summary", self.summary, "needs --file")
        require(
            self.output is None or self.output.lower().endswith((".html", ".htm")),
            "output",
            self.output,
            "name an .html file",
        )
        require(
            not (self.method == "ig" and self.backend == "onnx"),
            "method",
            self.method,
            "Integrated Gradients needs gradients: use --backend torch, or --method occlusion with ONNX",
        )


def output_dir(cfg: ExplainConfig) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir)
    return Path(cfg.model_dir) / (f"explain-{Path(cfg.file).stem}" if cfg.file else "explain-text")


def read_texts(cfg: ExplainConfig, meta: dict) -> tuple[list[str], list[str] | None, int]:
    """The first --max-texts texts (and pairs) of --file, and how many rows the file has."""
    from bertcls.core.data import Columns, check_columns
    from bertcls.core.readers import detect_format, iter_records

    fmt = detect_format(Path(cfg.file))
    text_col = "text" if fmt == "lines" else cfg.text_column or meta.get("text_column") or "text"
    pair_col = None if fmt == "lines" else cfg.text_pair_column or meta.get("text_pair_column")
    names, records = iter_records(cfg.file, cfg.encoding, fmt)
    if fmt != "jsonl":  # a JSON line may bring keys the first one lacked: those rows are checked one by one
        check_columns(Path(cfg.file), names, Columns(text=text_col, text_pair=pair_col, label=None), False)
    texts, pairs, n = [], [], 0
    for row, rec in records:
        n += 1
        if len(texts) >= cfg.max_texts:
            continue
        text = rec.get(text_col)
        if not isinstance(text, str) or not text.strip():
            where = "row" if fmt == "parquet" else "line"
            raise UserError(
                f"{cfg.file}: {where} {row}, column {text_col!r}: empty or missing text; fix or drop the row"
            )
        texts.append(text)
        if pair_col is not None:
            pairs.append(str(rec.get(pair_col) or ""))
    if not texts:
        raise UserError(f"{cfg.file}: no rows to explain")
    return texts, (pairs if pair_col is not None else None), n


def run(cfg: ExplainConfig) -> dict:
    from bertcls.analysis.report import page, summary, write_summary
    from bertcls.classifier import TextClassifier

    out = output_dir(cfg)
    if cfg.output and Path(cfg.output).exists():
        raise UserError(
            f"--output={cfg.output} already exists; bertcls never replaces a file it did not create: choose a new name"
        )
    check_output_dir(
        out, "explain", overwrite=None, inputs=[("MODEL_DIR", cfg.model_dir), ("--file", cfg.file)]
    )
    clf = TextClassifier.from_args(cfg)
    if cfg.file:
        texts, pairs, n_rows = read_texts(cfg, clf.meta)
        if n_rows > len(texts):
            warn(f"{cfg.file}: explained the first {len(texts)} of {n_rows} rows; raise --max-texts for more")
    else:
        texts, pairs, n_rows = [cfg.text], (None if cfg.text_pair is None else [cfg.text_pair]), 1
    explanations = clf.explain(
        texts,
        pairs,
        method=cfg.method,
        target=cfg.target,
        steps=cfg.steps,
        zh_words=cfg.zh_words,
        progress=len(texts) > 20,
    )
    table = summary(explanations, cfg.top) if cfg.summary else None
    html = page(explanations, f"Why {Path(cfg.model_dir).name} said so")
    with staged_dir(out) as tmp:
        save_yaml(cfg, tmp / CONFIG_FILE)
        lines = [json.dumps(e.to_dict(), ensure_ascii=False) for e in explanations]
        atomic_write_text(tmp / "explanations.jsonl", "\n".join(lines) + "\n")
        atomic_write_text(tmp / "report.html", html)
        if table is not None:
            write_summary(table, tmp)
    if cfg.output:
        atomic_write_text(cfg.output, html)
    errors = [
        t.completeness_error for e in explanations for t in e.targets if t.completeness_error is not None
    ]
    return {
        "output_dir": str(out),
        "output": cfg.output,
        "explanations": explanations,
        "n_rows": n_rows,
        "summary": table,
        "max_completeness_error": max(errors) if errors else None,
        "median_seconds": sorted(e.seconds for e in explanations)[len(explanations) // 2],
    }


def summarize(result: dict) -> str:
    """What `bertcls explain` prints: one text's top words, or a file's count; where the report is."""
    ex = result["explanations"]
    out = Path(result["output_dir"])
    lines = []
    if len(ex) == 1:
        e = ex[0]
        for t in e.targets:
            words = ", ".join(f"{w} ({s:+.3f})" for w, s in e.top(5, t.label)) or "(none)"
            lines.append(f"{t.label} (p={t.probability:.3f}): {words}")
        if e.note:
            lines.append(f"note: {e.note}")
    else:
        lines.append(
            f"explained {len(ex)} texts ({ex[0].method}, median {result['median_seconds']:.3f} s per text)"
        )
        for label, rows in (result["summary"] or {}).items():
            lines.append(f"towards {label}: " + ", ".join(w for w, _, _ in rows[:8]))
    if result["max_completeness_error"] is not None:
        lines.append(
            f"IG completeness error at most {result['max_completeness_error']:.4f} (probability units; raise --steps to lower it)"
        )
    also = f" (and {result['output']})" if result["output"] else ""
    lines.append(
        f"report: {out / 'report.html'}{also}; scores with character offsets: {out / 'explanations.jsonl'}"
    )
    return "\n".join(lines)
