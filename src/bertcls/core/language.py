"""Does the model's vocabulary fit the data's script? One line of warning before training when it does not.

Why: an English vocabulary reads Chinese text mostly as ``[UNK]`` (MiniLM-L6's 30,522 entries hold 488
CJK characters; 64% of ChnSentiCorp's tokens come out as ``[UNK]``), and fine-tuning then learns from
almost nothing while the loss still falls. The user only sees a disappointing accuracy at the end; the
character TF-IDF baseline reached 87% where such a model reached 65% on Chinese news titles (as
reported in issue 17). Measured here: the share of CJK characters among the letters of the data, the share of CJK entries in the
vocabulary, and the ``[UNK]`` rate of the tokenizer on a sample of the training texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")

SAMPLE = 2000  # texts tokenized for the [UNK] rate: enough for a stable share, fast on any tokenizer
UNK_WARN = 0.03  # above "a few %" of tokens unknown, the model cannot read the data
SCRIPT_MAJORITY = 0.5  # the data is written mostly in one script
VOCAB_SHARE_MIN = 0.1  # a vocabulary with fewer entries of that script was not made for it


def cjk_share(texts: Sequence[str], limit: int = SAMPLE) -> float:
    """Share of CJK characters among the CJK and Latin letters of (up to ``limit`` of) ``texts``."""
    cjk = latin = 0
    for t in texts[:limit]:
        cjk += len(_CJK.findall(t))
        latin += len(_LATIN.findall(t))
    return cjk / (cjk + latin) if cjk + latin else 0.0


@dataclass
class LanguageFit:
    data_cjk_share: float
    vocab_cjk_share: float
    vocab_latin_share: float
    unk_rate: float
    warning: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def language_fit(texts: Sequence[str], tokenizer, model_name: str) -> LanguageFit:
    """Compare the data's script with the model's vocabulary; ``warning`` is set on a clear mismatch."""
    vocab = list(tokenizer.get_vocab())
    v_cjk = sum(1 for t in vocab if _CJK.search(t)) / max(1, len(vocab))
    v_latin = sum(1 for t in vocab if _LATIN.search(t)) / max(1, len(vocab))
    sample = [t for t in texts[:SAMPLE] if t]
    d_cjk = cjk_share(sample)
    unk_id = tokenizer.unk_token_id
    total = unk = 0
    if sample and unk_id is not None:
        for ids in tokenizer(sample, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]:
            total += len(ids)
            unk += sum(1 for i in ids if i == unk_id)
    unk_rate = unk / total if total else 0.0
    problems = []
    if d_cjk > SCRIPT_MAJORITY and v_cjk < VOCAB_SHARE_MIN:
        problems.append(
            f"the texts are {d_cjk:.0%} Chinese characters but only {v_cjk:.1%} of the vocabulary is"
        )
    elif d_cjk < 1 - SCRIPT_MAJORITY and v_latin < VOCAB_SHARE_MIN:
        problems.append(f"the texts are mostly Latin script but only {v_latin:.1%} of the vocabulary is")
    if unk_rate > UNK_WARN:
        problems.append(f"{unk_rate:.0%} of their tokens are [UNK]")
    warning = None
    if problems:
        fix = (
            "pretrain a Chinese model (README, 'Chinese pretraining') and pass it with --model"
            if d_cjk > SCRIPT_MAJORITY
            else "pass a model whose vocabulary covers this language with --model"
        )
        warning = (
            f"model {model_name} may not be able to read this data: {'; '.join(problems)}. "
            f"Fix: {fix}, or add --ensemble to lean on the TF-IDF baseline"
        )
    return LanguageFit(round(d_cjk, 4), round(v_cjk, 4), round(v_latin, 4), round(unk_rate, 4), warning)
