"""Pretraining data as in BERT's ``create_pretraining_data.py`` (sentences -> segment pairs); the masks
are drawn in :mod:`bertcls.pretrain.masking`, the objective lives in :mod:`bertcls.pretrain.objective`.

documents (``corpora``) -> sentences (:func:`split_sentences`) -> token ids and word starts, tokenized
once in batches by the Rust tokenizer (:func:`tokenize_documents`) -> ``[CLS] A [SEP] B [SEP]`` instances
packed up to ``max_seq_length`` with next-sentence labels, built once from the seed
(:func:`create_instances`) -> MLM masks drawn per epoch (``masking.mask_tokens``) from an RNG seeded with
(seed, stream, epoch, index): every epoch sees new masks, and a resumed run sees exactly the masks the
interrupted one would have.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bertcls.core.errors import require_extra
from bertcls.pretrain.corpora import Document

log = logging.getLogger("bertcls")

# ---------------------------------------------------------------------------------------------------- sentences
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CLOSE = r"[”’」』》）)\]\"']*"
_BOUNDARY = re.compile(
    # Chinese terminators (and ellipses) end a sentence wherever they stand, with any closing quotes.
    rf"(?:[。！？；]|…+){_CLOSE}"
    # Western terminators only before a space + capital (so "3.5" and "e.g. this" stay whole), or
    # before a CJK character (Chinese reviews often use ASCII "!" and "?").
    rf"|[.!?]+{_CLOSE}(?=\s+[\"'“‘(\[]?[A-Z]|\s*[\u4e00-\u9fff])"
)


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences (English and Chinese punctuation rules); never loses characters
    other than surrounding whitespace."""
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        piece = text[start : m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


# ---------------------------------------------------------------------------------------------------- tokenize
Sentence = tuple[np.ndarray, "np.ndarray | None"]  # (token ids int32, word-start flags or None)


def continuation_mask(tokenizer) -> np.ndarray:
    """``True`` for WordPiece continuation pieces ('##ing'), indexed by token id."""
    vocab = tokenizer.get_vocab()
    mask = np.zeros(max(len(tokenizer), max(vocab.values()) + 1), dtype=bool)
    for tok, i in vocab.items():
        if tok.startswith("##"):
            mask[i] = True
    return mask


def _jieba() -> Callable[[str], list[str]]:
    require_extra("jieba", "zh", "whole-word masking of Chinese text")
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not ours to print
    return jieba.lcut


def _word_starts(
    text: str,
    offsets: list[tuple[int, int]],
    ids: np.ndarray,
    is_cont: np.ndarray,
    cut: Callable[[str], list[str]] | None,
) -> np.ndarray:
    starts = ~is_cont[ids]
    if cut is not None and has_cjk(text):
        # A token begins a word iff it starts where a jieba word starts (char offsets into ``text``)
        # and is not a '##' piece: so 北京大学 masks as one unit and 'iphone6' -> ip ##hone ##6 too.
        bounds = np.cumsum([0] + [len(w) for w in cut(text)])
        first = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
        starts &= np.isin(first, bounds)
    return starts


def tokenize_documents(
    tokenizer,
    docs: list[Document],
    whole_word: bool = False,
    batch_size: int = 4096,
    progress: Callable | None = None,
) -> list[list[Sentence]]:
    """Sentence-split and tokenize every document once, in batches on the Rust tokenizer.

    Word-start flags are recorded only for whole-word masking: WordPiece '##' pieces continue a word, and
    for text containing Chinese, jieba word boundaries decide which characters belong together.
    """
    from tokenizers import Tokenizer

    # A private copy: the shared backend may carry truncation/padding settings from earlier calls.
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    flat: list[str] = []
    owner: list[int] = []
    for d, doc in enumerate(docs):
        for para in doc:
            for sent in split_sentences(para):
                flat.append(sent)
                owner.append(d)
    is_cont = continuation_mask(tokenizer) if whole_word else None
    cut = _jieba() if whole_word and any(has_cjk(s) for s in flat) else None
    out: list[list[Sentence]] = [[] for _ in docs]
    bar = progress(total=len(flat), desc="tokenize", unit="sent") if progress else None
    for i in range(0, len(flat), batch_size):
        chunk = flat[i : i + batch_size]
        for j, enc in enumerate(backend.encode_batch(chunk, add_special_tokens=False)):
            if not enc.ids:
                continue
            ids = np.asarray(enc.ids, dtype=np.int32)
            starts = _word_starts(chunk[j], enc.offsets, ids, is_cont, cut) if is_cont is not None else None
            out[owner[i + j]].append((ids, starts))
        if bar:
            bar.update(len(chunk))
    if bar:
        bar.close()
    return [d for d in out if d]


# ---------------------------------------------------------------------------------------------------- instances
@dataclass
class Instances:
    """``[CLS] A [SEP] B [SEP]`` token sequences with their NSP labels (1 = B is a random segment)."""

    input_ids: list[np.ndarray]
    len_a: np.ndarray
    next_sentence_label: np.ndarray
    word_starts: list[np.ndarray] | None = None
    docs: np.ndarray | None = None
    """(n, 2): the documents segments A and B were cut from (B's differs when NSP drew a random one)."""

    def __len__(self) -> int:
        return len(self.input_ids)

    def subset(self, idx) -> Instances:
        idx = list(idx)
        return Instances(
            [self.input_ids[i] for i in idx],
            self.len_a[idx],
            self.next_sentence_label[idx],
            [self.word_starts[i] for i in idx] if self.word_starts is not None else None,
            self.docs[idx] if self.docs is not None else None,
        )

    @staticmethod
    def concat(parts: list[Instances]) -> Instances:
        ws = (
            [w for p in parts for w in p.word_starts]
            if all(p.word_starts is not None for p in parts)
            else None
        )
        docs = np.concatenate([p.docs for p in parts]) if all(p.docs is not None for p in parts) else None
        return Instances(
            [x for p in parts for x in p.input_ids],
            np.concatenate([p.len_a for p in parts]),
            np.concatenate([p.next_sentence_label for p in parts]),
            ws,
            docs,
        )

    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]

    def fingerprint(self) -> str:
        """Identifies the instance set, so --resume can refuse a changed corpus, tokenizer or seed."""
        h = hashlib.sha256()
        h.update(np.asarray(self.lengths(), dtype=np.int64).tobytes())
        h.update(self.len_a.astype(np.int64).tobytes())
        h.update(self.next_sentence_label.astype(np.int64).tobytes())
        for x in self.input_ids[:: max(1, len(self) // 500)]:
            h.update(x.tobytes())
        return h.hexdigest()[:16]


def _split_long(doc: list[Sentence], limit: int) -> list[Sentence]:
    """Cut sentences longer than ``limit`` tokens into pieces (a run-on sentence would otherwise be
    truncated away, as BERT's script does, losing most of its text)."""
    out = []
    for ids, ws in doc:
        for k in range(0, len(ids), limit):
            out.append((ids[k : k + limit], ws[k : k + limit] if ws is not None else None))
    return out


def _concat(parts: list[Sentence]) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    return [p[0] for p in parts], ([p[1] for p in parts] if parts and parts[0][1] is not None else None)


def _truncate_pair(
    len_a: int, len_b: int, max_tokens: int, rng: random.Random
) -> tuple[tuple[int, int], ...]:
    """BERT's truncate_seq_pair as slice bounds: trim the longer side, from the front or back at random."""
    a0, a1, b0, b1 = 0, len_a, 0, len_b
    while (a1 - a0) + (b1 - b0) > max_tokens:
        if a1 - a0 > b1 - b0:
            if rng.random() < 0.5:
                a0 += 1
            else:
                a1 -= 1
        elif rng.random() < 0.5:
            b0 += 1
        else:
            b1 -= 1
    return (a0, a1), (b0, b1)


def create_instances(
    docs: list[list[Sentence]],
    max_seq_length: int,
    short_seq_prob: float,
    seed: int,
    cls_id: int,
    sep_id: int,
) -> Instances:
    """Segment pairs as in the BERT paper: fill a chunk of consecutive sentences up to a target length
    (shorter with probability ``short_seq_prob``), cut it into A | B at a sentence boundary, and with
    probability 1/2 replace B by text from a random other document (NSP label 1).

    One change from Google's script keeps NSP at 50/50: a chunk holding a single sentence is not forced
    to a random B; when the coin says "actual next", the sentence itself is cut at a random token.
    """
    rng = random.Random(seed)
    max_tokens = max_seq_length - 3
    docs = [_split_long(d, max(1, max_tokens // 2)) for d in docs]
    ids_out: list[np.ndarray] = []
    ws_out: list[np.ndarray] | None = [] if docs and docs[0][0][1] is not None else None
    len_a: list[int] = []
    labels: list[int] = []
    sources: list[tuple[int, int]] = []
    for d, doc in enumerate(docs):
        target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
        chunk: list[Sentence] = []
        length = 0
        i = 0
        while i < len(doc):
            chunk.append(doc[i])
            length += len(doc[i][0])
            if i == len(doc) - 1 or length >= target:
                a_end = 1 if len(chunk) < 2 else rng.randint(1, len(chunk) - 1)
                random_next = rng.random() < 0.5 or (len(chunk) == 1 and len(chunk[0][0]) < 2)
                if random_next:
                    a_parts = chunk[:a_end]
                    a_len = sum(len(p[0]) for p in a_parts)
                    b_target = max(1, target - a_len)
                    other = d
                    if len(docs) > 1:
                        while other == d:
                            other = rng.randrange(len(docs))
                    rdoc = docs[other]
                    b_parts: list[Sentence] = []
                    b_len = 0
                    for j in range(rng.randrange(len(rdoc)), len(rdoc)):
                        b_parts.append(rdoc[j])
                        b_len += len(rdoc[j][0])
                        if b_len >= b_target:
                            break
                    i -= len(chunk) - a_end  # the unused sentences start the next chunk
                elif len(chunk) == 1:
                    ids, ws = chunk[0]
                    cut = rng.randint(1, len(ids) - 1)
                    a_parts = [(ids[:cut], ws[:cut] if ws is not None else None)]
                    b_parts = [(ids[cut:], ws[cut:] if ws is not None else None)]
                else:
                    a_parts, b_parts = chunk[:a_end], chunk[a_end:]
                a_ids, a_ws = _concat(a_parts)
                b_ids, b_ws = _concat(b_parts)
                a, b = np.concatenate(a_ids), np.concatenate(b_ids)
                (a0, a1), (b0, b1) = _truncate_pair(len(a), len(b), max_tokens, rng)
                if a1 > a0 and b1 > b0:
                    seq = np.concatenate([[cls_id], a[a0:a1], [sep_id], b[b0:b1], [sep_id]]).astype(np.int32)
                    if ws_out is not None:
                        flags = np.concatenate(
                            [
                                [False],
                                np.concatenate(a_ws)[a0:a1],
                                [False],
                                np.concatenate(b_ws)[b0:b1],
                                [False],
                            ]
                        )
                        # A segment may begin inside a word (random start, front truncation): its first
                        # token starts a masking unit, so no unit ever spans [SEP].
                        flags[1] = flags[a1 - a0 + 2] = True
                        ws_out.append(flags)
                    ids_out.append(seq)
                    len_a.append(a1 - a0)
                    labels.append(int(random_next))
                    sources.append((d, other if random_next else d))
                chunk, length = [], 0
                target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
            i += 1
    return Instances(
        ids_out,
        np.asarray(len_a, dtype=np.int32),
        np.asarray(labels, dtype=np.int64),
        ws_out,
        np.asarray(sources, dtype=np.int64).reshape(-1, 2),
    )


def build_instances(
    docs: list[list[Sentence]],
    max_seq_length: int,
    short_seq_prob: float,
    seed: int,
    cls_id: int,
    sep_id: int,
    eval_instances: int,
    dupe_factor: int = 1,
) -> tuple[Instances, Instances]:
    """(train, held-out) instances, the training ones built ``dupe_factor`` times with different seeds.

    Google's create_pretraining_data.py does the same (``--dupe_factor``, 10 there): each copy cuts the
    documents at other points and draws other NSP partners. Without it, many epochs over a small corpus
    replay the same segment pairs until NSP is memorised (training NSP loss near 0 while the held-out
    NSP loss rises). The first copy is split exactly as with one copy (held-out instances are segments of
    their own); the other copies drop every instance with text from a document that a held-out instance came
    from, so they re-cut no held-out text into training instances.
    """
    first = create_instances(docs, max_seq_length, short_seq_prob, seed, cls_id, sep_id)
    train_idx, eval_idx = split_eval(len(first), eval_instances, seed)
    train, held = first.subset(train_idx), first.subset(eval_idx)
    if dupe_factor > 1:
        held_docs = np.unique(held.docs)
        parts = [train]
        for k in range(1, dupe_factor):
            copy_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
            inst = create_instances(docs, max_seq_length, short_seq_prob, copy_seed, cls_id, sep_id)
            parts.append(inst.subset(np.flatnonzero(~np.isin(inst.docs, held_docs).any(axis=1))))
        train = Instances.concat(parts)
    return train, held


def split_eval(n: int, eval_instances: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded hold-out of instance indices: (train, eval), eval at most a tenth of the data."""
    k = min(eval_instances, n // 10)
    perm = np.random.default_rng([seed, 7]).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])
