"""``bertcls tokenizer train``: a BERT WordPiece vocabulary for pretraining from scratch.

Built with the ``tokenizers`` library the way BERT's own tokenizer works: BertNormalizer (cleanup,
optional lowercasing/accent stripping, and a space around every CJK character so Chinese is one token
per character), BertPreTokenizer (whitespace and punctuation), a WordPiece model with '##' continuations,
and the ``[CLS] A [SEP] B [SEP]`` template with segment ids. Saved as a transformers fast-tokenizer
directory that ``AutoTokenizer.from_pretrained`` and ``bertcls pretrain --tokenizer`` load.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bertcls.core.config import require, save_yaml

log = logging.getLogger("bertcls")

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4, as in BERT's vocabularies
# Per language: default vocabulary size (Google's English / Chinese BERT sizes, mBERT-like for multi)
# and how many distinct characters may enter the initial alphabet. Chinese needs every character (one
# token each); English caps the alphabet so stray symbols do not crowd out subwords.
LANG_DEFAULTS = {"en": (30522, 1000), "zh": (21128, None), "multi": (50000, 10000)}


@dataclass
class TokenizerConfig:
    corpus: list[str] = field(default_factory=list)
    """Text files (UTF-8), CSV/TSV/JSONL files (their 'text' column) and/or built-in corpora (peoples-daily, zh-reviews-text) to learn the vocabulary from."""
    output_dir: str | None = None
    """Directory for the tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt)."""
    lang: Literal["zh", "en", "multi"] = "en"
    """Language: sets the default vocabulary size and alphabet limit; all split CJK characters one per token, as BERT does."""
    vocab_size: int | None = None
    """Vocabulary size including special tokens (default: 30522 en, 21128 zh, 50000 multi). The trainer stops early when the corpus has no more merges."""
    lowercase: bool | None = None
    """Lowercase (and strip accents) before tokenizing (default: on for en and zh, off for multi, like mBERT cased)."""
    min_frequency: int = 2
    """Minimum count of a pair of pieces to be merged into a new vocabulary entry."""
    overwrite: bool = False
    """Replace an existing output directory."""

    def __post_init__(self) -> None:
        require(bool(self.corpus), "corpus", self.corpus, "give at least one text file or built-in corpus")
        require(
            bool(self.output_dir),
            "output_dir",
            self.output_dir,
            "give the directory to write the tokenizer to",
        )
        if self.vocab_size is None:
            self.vocab_size = LANG_DEFAULTS[self.lang][0]
        require(
            len(SPECIAL_TOKENS) + 10 <= self.vocab_size <= 1_000_000,
            "vocab_size",
            self.vocab_size,
            "use 15..1000000 (BERT: 30522 English, 21128 Chinese)",
        )
        if self.lowercase is None:
            self.lowercase = self.lang != "multi"
        require(self.min_frequency >= 1, "min_frequency", self.min_frequency, "must be >= 1")


def build_tokenizer(
    texts,
    vocab_size: int,
    lowercase: bool,
    min_frequency: int = 2,
    limit_alphabet: int | None = None,
    length: int | None = None,
):
    """Train a BERT WordPiece ``tokenizers.Tokenizer`` on an iterator of strings."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    # Exactly BERT's normalizer: transformers' BertTokenizer rebuilds this one from tokenizer_config.json
    # on loading (it keeps only the vocabulary of tokenizer.json), so any other step would be lost.
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    extra = {"limit_alphabet": limit_alphabet} if limit_alphabet else {}
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
        show_progress=False,
        **extra,
    )
    tok.train_from_iterator(texts, trainer, length=length)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def wrap(tok, lowercase: bool, model_max_length: int = 512):
    """The transformers fast tokenizer around a trained ``tokenizers.Tokenizer``."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(
        tokenizer_object=tok,
        do_lower_case=lowercase,
        tokenize_chinese_chars=True,
        strip_accents=None,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def run(cfg: TokenizerConfig) -> dict:
    from bertcls.core.io import staged_dir
    from bertcls.core.rundir import check_output_dir
    from bertcls.core.runtime import setup_logging
    from bertcls.pretrain.corpora import check_specs, iter_paragraphs, load_corpora

    out = Path(cfg.output_dir)
    check_output_dir(out, "tokenizer", overwrite=cfg.overwrite, inputs=[("--corpus", c) for c in cfg.corpus])
    check_specs(cfg.corpus)
    setup_logging(None)
    t0 = time.perf_counter()
    docs = load_corpora(cfg.corpus)
    paragraphs = list(iter_paragraphs(docs))
    chars = sum(len(p) for p in paragraphs)
    log.info(
        "training a %s WordPiece vocabulary (%d entries) on %d paragraphs, %d characters",
        cfg.lang,
        cfg.vocab_size,
        len(paragraphs),
        chars,
    )
    tok = build_tokenizer(
        paragraphs,
        cfg.vocab_size,
        bool(cfg.lowercase),
        cfg.min_frequency,
        LANG_DEFAULTS[cfg.lang][1],
        length=len(paragraphs),
    )
    fast = wrap(tok, bool(cfg.lowercase))
    # Coverage on a sample: the share of [UNK] and tokens per character say whether the size fits.
    sample = paragraphs[:: max(1, len(paragraphs) // 2000)]
    enc = tok.encode_batch(sample, add_special_tokens=False)
    n_tok = sum(len(e.ids) for e in enc)
    unk = sum(e.ids.count(1) for e in enc)
    stats = {
        "vocab_size": tok.get_vocab_size(),
        "requested_vocab_size": cfg.vocab_size,
        "lang": cfg.lang,
        "lowercase": cfg.lowercase,
        "corpus": cfg.corpus,
        "paragraphs": len(paragraphs),
        "characters": chars,
        "sample_unk_rate": round(unk / max(1, n_tok), 5),
        "sample_tokens_per_char": round(n_tok / max(1, sum(len(s) for s in sample)), 4),
        "seconds": round(time.perf_counter() - t0, 2),
        "output_dir": str(out),
    }
    with staged_dir(out) as stage:  # the directory appears complete or not at all
        fast.save_pretrained(stage)
        tok.model.save(str(stage))  # vocab.txt, for tools that read the classic BERT layout
        save_yaml(cfg, stage / "tokenizer_train_config.yaml")
        (stage / "tokenizer_stats.json").write_text(
            json.dumps(stats, indent=2, ensure_ascii=False), encoding="utf-8"
        )
    log.info("tokenizer saved to %s (%d tokens)", out, stats["vocab_size"])
    return stats


def summarize(result: dict) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)
