"""What ``bertcls explain`` writes: a self-contained HTML page (no script, no external file: it opens
from disk, in a mail attachment or a review tool) and, with ``--summary``, the words that push hardest
towards each label across a file (CSV + bar chart)."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any

STYLE = """
body{font:15px/1.6 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
.ex{border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:1em 0}
.meta{color:#555;font-size:13px}.bar{display:inline-block;height:.7em;background:#4a7bd0;vertical-align:middle}
.t{white-space:pre-wrap}.note{color:#a15c00;font-size:13px}
mark{padding:0 1px;border-radius:2px}
"""


def colour(score: float, scale: float) -> str:
    """Green pushes towards the explained label, red away from it; opacity = |score| / the text's max."""
    a = min(1.0, abs(score) / scale) * 0.85 if scale > 0 else 0.0
    return f"rgba(22,160,70,{a:.2f})" if score > 0 else f"rgba(215,48,39,{a:.2f})"


def highlight(source: str, words: list[Any], scores: list[float], segment: int) -> str:
    """The segment's own text, each attributed word wrapped in a coloured <mark> (title = its score)."""
    mine = [(w, s) for w, s in zip(words, scores) if w.segment == segment]
    scale = max((abs(s) for _, s in mine), default=0.0)
    out, at = [], 0
    for w, s in sorted(mine, key=lambda ws: ws[0].start):
        out.append(html.escape(source[at : w.start]))
        out.append(
            f'<mark style="background:{colour(s, scale)}" title="{s:+.4f}">{html.escape(source[w.start : w.end])}</mark>'
        )
        at = w.end
    out.append(html.escape(source[at:]))
    return "".join(out)


def section(e: Any) -> str:
    probs = "".join(
        f'<div>{html.escape(label)} <span class="bar" style="width:{p * 12:.2f}em"></span> {p:.3f}</div>'
        for label, p in sorted(e.probabilities.items(), key=lambda kv: -kv[1])
    )
    shown = e.prediction if isinstance(e.prediction, str) else ", ".join(e.prediction) or "(none)"
    parts = [f'<div class="ex"><div><b>predicted: {html.escape(str(shown))}</b></div>{probs}']
    for t in e.targets:
        err = "" if t.completeness_error is None else f"; completeness error {t.completeness_error:.4f}"
        parts.append(f'<div class="meta">why <b>{html.escape(t.label)}</b> ({e.method}{err}):</div>')
        parts.append(f'<div class="t">{highlight(e.text, e.words, t.scores, 0)}</div>')
        if e.pair is not None:
            parts.append(f'<div class="t">[pair] {highlight(e.pair, e.words, t.scores, 1)}</div>')
    if e.note:
        parts.append(f'<div class="note">{html.escape(e.note)}</div>')
    parts.append("</div>")
    return "".join(parts)


def page(explanations: list[Any], title: str = "bertcls explanation") -> str:
    body = "".join(section(e) for e in explanations)
    legend = (
        '<p class="meta">Green words push towards the explained label, red ones away from it; '
        "hover a word for its score.</p>"
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{legend}{body}</body></html>\n"
    )


def summary(explanations: list[Any], top: int = 15) -> dict[str, list[tuple[str, float, int]]]:
    """Per explained label: the words with the largest mean score towards it across the file
    (word, mean score, texts it occurs in), lower-cased, punctuation left out; words seen in fewer than 2 texts are left out
    when there are enough others (a single text's quirk is not a pattern)."""
    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in explanations:
        for t in e.targets:
            for w, s in zip(e.words, t.scores):
                if any(c.isalnum() for c in w.text):  # punctuation is not a reason a reader can use
                    totals[t.label][w.text.lower()].append(s)
    out = {}
    for label, words in totals.items():
        rows = [(w, sum(v) / len(v), len(v)) for w, v in words.items()]
        common = [r for r in rows if r[2] >= 2]
        rows = common if len(common) >= top else rows
        out[label] = sorted(rows, key=lambda r: -r[1])[:top]
    return out


def write_summary(table: dict, out: Path) -> list[Path]:
    """summary.csv and summary.png (one bar chart per label) in ``out``."""
    import csv

    from bertcls.core.plots import word_bars

    with (out / "summary.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["label", "rank", "word", "mean_score", "texts"])
        for label, rows in table.items():
            for rank, (word, score, n) in enumerate(rows, 1):
                w.writerow([label, rank, word, f"{score:.6f}", n])
    word_bars(table, out / "summary.png")
    return [out / "summary.csv", out / "summary.png"]
