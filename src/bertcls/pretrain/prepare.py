"""`bertcls pretrain`, before the loop: the options, the tokenizer, the model, the corpus cut into
instances, the run directory. Everything here can fail on user input, and all of it runs before the run
directory exists."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from bertcls.core import rundir
from bertcls.core.config import check_resume, require
from bertcls.core.errors import UserError
from bertcls.core.options import OptimArgs
from bertcls.core.runtime import progress

log = logging.getLogger("bertcls")

# Google's BERT miniatures (Turc et al., 2019): (layers, hidden); heads = hidden / 64, intermediate = 4 x hidden.
PRESETS = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768)}


@dataclass
class PretrainConfig(OptimArgs):
    corpus: list[str] = field(default_factory=list)
    """Text files (UTF-8; blank lines separate documents), CSV/TSV/JSONL files (their 'text' column, a document per row) and/or built-in corpora: peoples-daily, zh-reviews-text."""
    tokenizer: str | None = None
    """Tokenizer directory (from 'bertcls tokenizer train') for a model trained from scratch."""
    model: str | None = None
    """Continue pretraining this BERT checkpoint (directory or alias, e.g. minilm-l6) with its own tokenizer."""
    preset: Literal["tiny", "mini", "small", "medium", "base"] | None = None
    """Size from scratch: tiny L2/H128, mini L4/H256, small L4/H512, medium L8/H512, base L12/H768 (default tiny)."""
    layers: int | None = None
    """Transformer layers (overrides the preset)."""
    hidden: int | None = None
    """Hidden size (overrides the preset; heads default to hidden/64 and intermediate to 4 x hidden)."""
    heads: int | None = None
    """Attention heads (overrides the preset)."""
    intermediate: int | None = None
    """Feed-forward size (overrides the preset)."""
    output_dir: str | None = None
    """Run directory (the pretrained model). Default: runs/pretrain-<time>."""
    overwrite: bool = False
    """Replace an earlier run in --output-dir (kept until the new run succeeds)."""
    resume: bool = False
    """Continue the run in --output-dir exactly where it stopped."""
    one_doc_per_line: bool = False
    """Every line of the text files is a document (default: documents are separated by blank lines)."""
    exclude_file: list[str] = field(default_factory=list)
    """Evaluation files (CSV/TSV/JSONL 'text' column, or text lines) whose texts are removed from the corpus."""
    max_seq_length: int = 128
    """Tokens per instance, [CLS] A [SEP] B [SEP] included."""
    short_seq_prob: float = 0.1
    """Probability of a shorter target length for an instance (as BERT, so short inputs are seen too)."""
    mlm_probability: float = 0.15
    """Share of tokens selected for masked-LM prediction (80% [MASK], 10% random, 10% unchanged)."""
    whole_word_masking: bool = False
    """Mask whole words: WordPiece '##' pieces with their head, and jieba words for Chinese text."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (0: save the initial model untrained, e.g. a random-init baseline)."""
    max_minutes: float | None = None
    """Time budget for the training loop: the learning rate decays to 0 as it runs out, then the run saves and ends."""
    epochs: int | None = None
    """Passes over the instances, with new masks each pass (default 1 unless --max-steps/--max-minutes is given)."""
    dropout: float = 0.1
    """Dropout while pretraining (BERT: 0.1). 0 learns faster on short budgets (Geiping & Goldstein, 2022, "Cramming"); the saved config.json keeps the model's own rates (0.1 from scratch) for fine-tuning."""
    dupe_factor: int = 1
    """Build the training instances this many times with different cuts and NSP partners (BERT's create_pretraining_data.py --dupe_factor, 10 there): many epochs over one fixed set memorise NSP."""
    eval_batch_size: int = 64
    """Instances per batch at evaluation."""
    eval_instances: int = 1000
    """Instances held out for evaluation (at most a tenth of all; 0 disables evaluation)."""
    eval_steps: int = 200
    """Evaluate on the held-out instances and checkpoint every N optimizer steps."""
    logging_steps: int = 20
    """Log training losses, accuracies and throughput every N optimizer steps."""
    seed: int = 42
    """Random seed (initialisation, instances, masks, order, dropout)."""

    def __post_init__(self) -> None:
        self.check_optim()
        require(bool(self.corpus), "corpus", self.corpus, "give at least one text file or built-in corpus")
        require(
            bool(self.tokenizer) != bool(self.model),
            "tokenizer",
            self.tokenizer,
            "give --tokenizer DIR to train from scratch or --model DIR to continue a checkpoint (not both)",
        )
        dims = {
            "preset": self.preset,
            "layers": self.layers,
            "hidden": self.hidden,
            "heads": self.heads,
            "intermediate": self.intermediate,
        }
        if self.model:
            given = [k for k, v in dims.items() if v is not None]
            require(
                not given,
                given[0] if given else "preset",
                dims[given[0]] if given else None,
                "the size comes from --model's checkpoint; drop the size options",
            )
        else:
            layers, hidden = PRESETS[self.preset or "tiny"]
            self.preset = self.preset or "tiny"
            self.layers = self.layers or layers
            self.hidden = self.hidden or hidden
            self.heads = self.heads or max(1, self.hidden // 64)
            self.intermediate = self.intermediate or 4 * self.hidden
            require(self.layers >= 1, "layers", self.layers, "must be >= 1")
            require(self.hidden % self.heads == 0, "heads", self.heads, f"must divide --hidden={self.hidden}")
            require(self.intermediate >= 1, "intermediate", self.intermediate, "must be >= 1")
        require(
            8 <= self.max_seq_length <= 4096,
            "max_seq_length",
            self.max_seq_length,
            "use 8..4096 (BERT: 128, then 512)",
        )
        require(0 <= self.short_seq_prob <= 1, "short_seq_prob", self.short_seq_prob, "must be in [0, 1]")
        require(0 < self.mlm_probability < 1, "mlm_probability", self.mlm_probability, "must be in (0, 1)")
        require(self.max_steps is None or self.max_steps >= 0, "max_steps", self.max_steps, "must be >= 0")
        require(
            self.max_minutes is None or self.max_minutes > 0, "max_minutes", self.max_minutes, "must be > 0"
        )
        require(self.epochs is None or self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            self.epochs = 1
        require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")
        require(self.dupe_factor >= 1, "dupe_factor", self.dupe_factor, "must be >= 1 (BERT used 10)")
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "must be >= 1")
        require(self.eval_instances >= 0, "eval_instances", self.eval_instances, "must be >= 0")
        require(self.eval_steps >= 1, "eval_steps", self.eval_steps, "must be >= 1")
        require(self.logging_steps >= 1, "logging_steps", self.logging_steps, "must be >= 1")
        check_resume(self.resume, self.overwrite, self.output_dir)


def load_pretrain_tokenizer(cfg: PretrainConfig, model_path: str | None):
    from bertcls.core.models import load_tokenizer

    if model_path is None:
        p = Path(cfg.tokenizer).expanduser()
        if not p.is_dir():
            raise UserError(
                f"--tokenizer={cfg.tokenizer}: directory not found; train one first with: "
                f"bertcls tokenizer train --corpus ... --output-dir {cfg.tokenizer}"
            )
        if not any((p / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
            raise UserError(
                f"{p}: no tokenizer.json or vocab.txt; give the directory 'bertcls tokenizer train' wrote"
            )
        path = str(p)
    else:
        path = model_path
    tok = load_tokenizer(path)
    if (
        not getattr(tok, "is_fast", False)
        or tok.mask_token_id is None
        or tok.cls_token_id is None
        or tok.sep_token_id is None
        or tok.pad_token_id is None
    ):
        raise UserError(
            f"{path}: a fast BERT tokenizer with [CLS] [SEP] [PAD] [MASK] is needed; "
            f"train one with: bertcls tokenizer train"
        )
    return tok


def build_model(cfg: PretrainConfig, model_path: str | None, tokenizer):
    from transformers import BertConfig, BertForPreTraining

    from bertcls.core.models import check_vocab

    if model_path is None:
        bc = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.hidden,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            intermediate_size=cfg.intermediate,
            max_position_embeddings=max(512, cfg.max_seq_length),
            type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id,
        )
        return BertForPreTraining(bc)
    try:
        model = BertForPreTraining.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise UserError(
            f"--model={cfg.model}: cannot load as BERT ({str(e).splitlines()[0]}); "
            f"give a BERT-family model directory or a built-in alias"
        ) from None
    if model.config.model_type != "bert":
        raise UserError(
            f"--model={cfg.model}: is a '{model.config.model_type}' model; pretraining supports BERT"
        )
    if cfg.max_seq_length > model.config.max_position_embeddings:
        raise UserError(
            f"--max-seq-length={cfg.max_seq_length} exceeds the model's "
            f"{model.config.max_position_embeddings} positions; lower it"
        )
    check_vocab(tokenizer, model.config, cfg.model)
    return model


def prepare_data(cfg: PretrainConfig, tokenizer):
    """Corpus -> (train instances, eval instances). Everything here can fail on user input."""
    from bertcls.pretrain import instances
    from bertcls.pretrain.corpora import exclude_overlap, load_corpora, read_texts

    docs = load_corpora(cfg.corpus, cfg.one_doc_per_line)
    if cfg.exclude_file:
        texts = [t for f in cfg.exclude_file for t in read_texts(Path(f).expanduser())]
        docs, dropped = exclude_overlap(docs, texts)
        log.info("--exclude-file: dropped %d paragraphs that occur in %d excluded texts", dropped, len(texts))
    t0 = time.perf_counter()
    tok_docs = instances.tokenize_documents(tokenizer, docs, cfg.whole_word_masking, progress=progress)
    train, held = instances.build_instances(
        tok_docs,
        cfg.max_seq_length,
        cfg.short_seq_prob,
        cfg.seed,
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        cfg.eval_instances,
        cfg.dupe_factor,
    )
    n_tokens = sum(len(x) for x in train.input_ids) + sum(len(x) for x in held.input_ids)
    log.info(
        "corpus: %d documents -> %d instances (dupe factor %d), %d tokens (%.1fs); NSP random-next "
        "share %.3f",
        len(tok_docs),
        len(train) + len(held),
        cfg.dupe_factor,
        n_tokens,
        time.perf_counter() - t0,
        float(train.next_sentence_label.mean()) if len(train) else 0.0,
    )
    if len(tok_docs) == 1:
        log.warning(
            "the corpus is a single document, so NSP's random segments come from the same text; "
            "separate documents with blank lines or pass --one-doc-per-line"
        )
    if len(train) < 1:
        raise UserError(
            f"{', '.join(cfg.corpus)}: too little text for a single training instance; give a larger corpus"
        )
    return train, held


def set_dropout(model, p: float) -> None:
    """Set the rate of every dropout layer for this run only: config.json keeps its own rates, so the
    fine-tuning that loads the saved model gets BERT's regularisation back."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p


def default_output_dir() -> Path:
    return Path("runs") / f"pretrain-{time.strftime('%Y%m%d-%H%M%S')}"


def plan_run_dir(cfg: PretrainConfig, model_path: str | None) -> rundir.RunDir:
    """Where the run works and ends up, checked before anything is written."""
    run = rundir.locate_run(Path(cfg.output_dir) if cfg.output_dir else default_output_dir(), cfg.resume)
    inputs = [("--tokenizer", cfg.tokenizer), ("--model", model_path)]
    inputs += [("--corpus", c) for c in cfg.corpus] + [("--exclude-file", f) for f in cfg.exclude_file]
    rundir.check_run_dir(run, "pretrain", cfg.overwrite, cfg.resume, inputs)
    return run
