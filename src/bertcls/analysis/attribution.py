"""Token attributions for one prediction, summed onto the words of the user's own text.

Two methods:
- ``ig``: Integrated Gradients on the input (word-piece) embeddings, by captum's
  ``LayerIntegratedGradients``; the baseline keeps [CLS]/[SEP] and puts [MASK] everywhere else (see
  ``baseline_token``). The
  attributed output is the target label's probability (softmax; sigmoid per label for multi-label),
  so the scores of a text add up to p(text) - p(baseline), and captum's convergence delta is the
  completeness error we report. Needs gradients, so the torch backend.
- ``occlusion``: leave one word out. Each word's score is how much the target probability drops when
  its word pieces are deleted. Every variant of a text goes through the classifier's own batched
  inference (``row_logits``), so it runs on the ONNX backend too. Written by hand because captum's
  ``Occlusion`` slides a fixed-size window over a tensor: it cannot delete a word's pieces (the row gets
  shorter) and cannot run on onnxruntime.

Words are what the tokenizer's pre-tokenizer splits (whitespace and punctuation; every CJK character
is its own word in BERT's), mapped back to character offsets in the original text, so
``text[start:end]`` is exactly the highlighted substring. ``zh_words="jieba"`` groups Chinese
characters into jieba words instead.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bertcls.core.errors import UserError

METHODS = ("ig", "occlusion")


@dataclass
class Word:
    text: str
    start: int
    """Character offset of the word in its segment (the text, or the pair for segment 1)."""
    end: int
    segment: int = 0
    """0 = the text, 1 = the text pair."""
    tokens: list[int] = field(default_factory=list, repr=False)
    """Positions of its word pieces in the model row."""


@dataclass
class Attribution:
    label: str
    probability: float
    scores: list[float]
    """One score per word (same order as ``Explanation.words``); > 0 pushes towards ``label``."""
    completeness_error: float | None = None
    """IG only: |sum of token scores - (p(text) - p(baseline))|, in probability units."""


@dataclass
class Explanation:
    text: str
    pair: str | None
    method: str
    prediction: Any
    probabilities: dict[str, float]
    words: list[Word]
    targets: list[Attribution]
    truncated: bool = False
    """The text is longer than the model's window: only its first part was read and explained."""
    seconds: float = 0.0
    note: str = ""

    def top(self, k: int = 5, label: str | None = None) -> list[tuple[str, float]]:
        """The k words that push hardest towards ``label`` (default: the first target)."""
        t = next((t for t in self.targets if label in (None, t.label)), None)
        if t is None:
            raise UserError(
                f"label {label!r} was not explained; explained: {[t.label for t in self.targets]}"
            )
        order = np.argsort(-np.asarray(t.scores), kind="stable")[:k]
        return [(self.words[i].text, float(t.scores[i])) for i in order if t.scores[i] > 0]

    def to_dict(self) -> dict:
        d = asdict(self)
        for w in d["words"]:
            w.pop("tokens")
        return d

    def to_html(self, title: str = "bertcls explanation") -> str:
        from bertcls.analysis.report import page

        return page([self], title)


# ---- words ---------------------------------------------------------------------------------------
def tokenize(clf: Any, text: str, pair: str | None) -> tuple[dict, list[Word], bool]:
    """One model row (truncated to the window) and its words with character offsets."""
    tok = clf.tokenizer
    if not getattr(tok, "is_fast", False):
        raise UserError("explain needs a fast tokenizer (tokenizer.json) to map word pieces to characters")
    enc = tok(
        text,
        pair,
        truncation=True,
        max_length=clf.max_length,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    seq_ids, word_ids = enc.sequence_ids(), enc.word_ids()
    groups: dict[tuple[int, int], list[int]] = {}
    for pos, (s, w) in enumerate(zip(seq_ids, word_ids)):
        if s is not None and w is not None:
            groups.setdefault((s, w), []).append(pos)
    words = []
    for (s, _), positions in groups.items():
        source = text if s == 0 else pair
        start, end = enc["offset_mapping"][positions[0]][0], enc["offset_mapping"][positions[-1]][1]
        words.append(Word(source[start:end], start, end, s, positions))
    truncated = any(
        source[max((w.end for w in words if w.segment == s), default=0) :].strip()
        for s, source in ((0, text), (1, pair))
        if source is not None
    )
    row = {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"]}
    return row, words, truncated


def jieba_words(words: list[Word], text: str, pair: str | None) -> list[Word]:
    """Merge character words that fall inside one jieba word (other words are kept as they are)."""
    from bertcls.core.errors import require_extra

    require_extra("jieba", "zh", "--zh-words jieba")
    import jieba

    jieba.setLogLevel(60)  # its "Building prefix dict" chatter goes to stderr otherwise
    merged: list[Word] = []
    for s, source in ((0, text), (1, pair)):
        if source is None:
            continue
        spans = [(a, b) for _, a, b in jieba.tokenize(source)]
        mine = [w for w in words if w.segment == s]
        j = 0
        for a, b in spans:
            inside = []
            while j < len(mine) and mine[j].start < b:
                inside.append(mine[j])
                j += 1
            if len(inside) > 1 and inside[0].start >= a and inside[-1].end <= b:
                tokens = [t for w in inside for t in w.tokens]
                merged.append(
                    Word(source[inside[0].start : inside[-1].end], inside[0].start, inside[-1].end, s, tokens)
                )
            else:
                merged.extend(inside)
        merged.extend(mine[j:])
    return merged


# ---- methods -------------------------------------------------------------------------------------
def default_method(backend: str) -> str:
    """Integrated Gradients where gradients exist (torch), occlusion elsewhere (ONNX)."""
    return "ig" if backend == "torch" else "occlusion"


def without(row: dict, drop: set[int]) -> dict:
    """The model row with the word pieces at positions ``drop`` deleted (the row gets shorter)."""
    return {k: [v for i, v in enumerate(row[k]) if i not in drop] for k in ("input_ids", "token_type_ids")}


def target_ids(clf: Any, probs: np.ndarray, prediction: Any, target: str | None) -> list[int]:
    """Which labels to explain: the chosen one, else the prediction (every predicted label for
    multi-label; the most probable one when none passes its threshold)."""
    if target is not None:
        if target not in clf.labels:
            raise UserError(f"--target {target!r} is not a label of this model; its labels: {clf.labels}")
        return [clf.labels.index(target)]
    if clf.multi_label:
        return [clf.labels.index(label) for label in prediction] or [int(probs.argmax())]
    return [clf.labels.index(prediction)]


def baseline_token(tokenizer) -> int:
    """IG's "no information" token: [MASK], which MLM pretraining taught every BERT to read as an unknown
    word. [PAD] is the common choice, but attention never reads it in pretraining, so its embedding can
    be untrained noise: on bertcls's Chinese BERT-tiny (ChnSentiCorp, 100 test reviews) deleting the
    top 20% characters by IG dropped the predicted probability by 0.04 with a [PAD] baseline and by
    0.61 with [MASK] (random: 0.01); on MiniLM / SST-2, 0.54 vs 0.56 (random: 0.08). bench/ig_baselines.py."""
    return tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.pad_token_id


def token_scores_ig(clf: Any, row: dict, targets: list[int], n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """IG scores per (target, token) and the completeness error per target."""
    if clf.backend != "torch":
        raise UserError("--method ig needs gradients: use --backend torch, or --method occlusion on ONNX")
    import torch

    from bertcls.core.errors import require_extra

    require_extra("captum", "explain", "--method ig")
    from captum.attr import LayerIntegratedGradients

    model = clf.model
    device = next(model.parameters()).device
    ids = torch.tensor([row["input_ids"]] * len(targets), device=device)
    tt = torch.tensor([row["token_type_ids"]] * len(targets), device=device)
    mask = torch.ones_like(ids)
    special = torch.tensor(
        clf.tokenizer.get_special_tokens_mask(row["input_ids"], already_has_special_tokens=True),
        device=device,
    ).bool()
    base = torch.where(special, ids, torch.full_like(ids, baseline_token(clf.tokenizer)))
    multi = clf.multi_label

    def forward(input_ids, token_type_ids, attention_mask):
        logits = model(
            input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask
        ).logits
        return torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    with torch.enable_grad():
        attr, delta = lig.attribute(
            ids,
            baselines=base,
            target=targets,
            additional_forward_args=(tt, mask),
            n_steps=n_steps,
            internal_batch_size=max(1, 64 // len(targets)) * len(targets),
            return_convergence_delta=True,
        )
    return attr.sum(-1).detach().cpu().numpy(), delta.abs().detach().cpu().numpy()


def word_scores_occlusion(clf: Any, row: dict, words: list[Word], targets: list[int]) -> np.ndarray:
    """p(target | text) - p(target | text without the word), for every word at once (one batch)."""
    variants = [row] + [without(row, set(w.tokens)) for w in words]
    probs = clf.probabilities(clf.row_logits(variants))
    return (probs[0][targets][:, None] - probs[1:, targets].T).astype(np.float64)


def explain_one(
    clf: Any,
    text: str,
    pair: str | None = None,
    method: str = "ig",
    target: str | None = None,
    n_steps: int = 32,
    zh_words: str | None = None,
) -> Explanation:
    if method not in METHODS:
        raise UserError(f"--method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    if not isinstance(text, str) or not text.strip():
        raise UserError("explain needs a non-empty text")
    t0 = time.perf_counter()
    row, words, truncated = tokenize(clf, text, pair)
    if zh_words == "jieba":
        words = jieba_words(words, text, pair)
    probs = clf.probabilities(clf.row_logits([row]))[0]
    prediction = clf.decide(probs[None, :])[0]
    targets = target_ids(clf, probs, prediction, target)
    errors: list[float | None] = [None] * len(targets)
    if method == "ig":
        tokens, delta = token_scores_ig(clf, row, targets, n_steps)
        scores = np.array([[t[w.tokens].sum() for w in words] for t in tokens])
        errors = [float(d) for d in delta]
    else:
        scores = word_scores_occlusion(clf, row, words, targets)
    notes = []
    if truncated:
        notes.append(
            f"the text is longer than the model's {clf.max_length}-token window: only its first part was read and explained"
        )
    if clf.baseline is not None:
        notes.append(
            "the model's TF-IDF ensemble partner is not explained: these are the BERT model's reasons"
        )
    return Explanation(
        text=text,
        pair=pair,
        method=method,
        prediction=prediction,
        probabilities={label: float(p) for label, p in zip(clf.labels, probs)},
        words=words,
        targets=[
            Attribution(clf.labels[j], float(probs[j]), [float(x) for x in s], e)
            for j, s, e in zip(targets, scores, errors)
        ],
        truncated=truncated,
        seconds=round(time.perf_counter() - t0, 4),
        note="; ".join(notes),
    )
