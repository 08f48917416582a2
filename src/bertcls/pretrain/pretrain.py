"""``bertcls pretrain``: BERT pretraining with masked language modelling + next sentence prediction.

From scratch (``--tokenizer DIR --preset tiny``: random initialisation of a BERT miniature) or continued
from a checkpoint (``--model DIR``: its own tokenizer; MLM/NSP heads are created when it has none).
Reads top to bottom: config, setup (corpus -> instances, model, loaders), loop (train, evaluate on
held-out instances, checkpoint, time budget), save (an HF BERT directory that ``bertcls train --model``
fine-tunes, metrics, curves). ``--max-steps 0`` saves the untrained model: the random-init baseline.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from bertcls.core import checkpoint, rundir
from bertcls.core.config import OptimArgs, require, save_yaml
from bertcls.core.errors import UserError
from bertcls.core.runtime import Interrupted, make_accelerator, optimizer_step, progress, setup_logging

log = logging.getLogger("bertcls")

# Google's BERT miniatures (Turc et al., 2019): (layers, hidden); heads = hidden / 64, intermediate = 4 x hidden.
PRESETS = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768)}
RUN_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "run_config.yaml",
    "metrics.jsonl",
    "metrics.json",
    "learning_curve.png",
    "README.md",
    "train.log",
)


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
        require(
            not (self.resume and self.overwrite),
            "resume",
            self.resume,
            "--resume and --overwrite exclude each other",
        )
        require(
            not self.resume or self.output_dir is not None,
            "resume",
            self.resume,
            "--resume needs --output-dir of the run to continue",
        )


# ---------------------------------------------------------------------------------------------------- setup
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


def lr_factor(fraction: float, warmup: float) -> float:
    """Linear warm-up over ``warmup`` of the run, then linear decay to 0 at its end."""
    if fraction < warmup:
        return fraction / warmup
    return max(0.0, (1.0 - fraction) / max(1e-12, 1.0 - warmup))


# ---------------------------------------------------------------------------------------------------- run
def run(cfg: PretrainConfig) -> dict:
    from accelerate.utils import set_seed

    from bertcls.core.models import resolve_model
    from bertcls.pretrain.corpora import check_exclude_files, check_specs

    # ---- setup: everything that can fail on user input happens before the run directory exists
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    setup_logging(None)
    model_path = resolve_model(cfg.model) if cfg.model else None
    run_dir = plan_run_dir(cfg, model_path)
    check_specs(cfg.corpus)
    check_exclude_files(cfg.exclude_file)
    tokenizer = load_pretrain_tokenizer(cfg, model_path)
    train_set, eval_set = prepare_data(cfg, tokenizer)
    set_seed(cfg.seed)
    model = build_model(cfg, model_path, tokenizer)
    set_dropout(model, cfg.dropout)
    accelerator = make_accelerator(cfg.precision, cfg.gradient_accumulation_steps)
    accelerator.wait_for_everyone()  # every rank has checked the directories before rank 0 writes
    if accelerator.is_main_process:
        rundir.start_run(run_dir, cfg.resume)
        save_yaml(rundir.run_config_for_resume(cfg, run_dir.final), run_dir.work / "run_config.yaml")
    accelerator.wait_for_everyone()
    setup_logging(run_dir.work / "train.log", accelerator.is_main_process)
    try:
        result = pretrain(cfg, run_dir, accelerator, model, tokenizer, train_set, eval_set)
    except Interrupted:
        raise
    except BaseException:
        if accelerator.is_main_process:
            rundir.discard_failed(run_dir, cfg.resume)
        raise
    if accelerator.is_main_process:
        rundir.publish(run_dir)
        log.info("model saved to %s", run_dir.final)
    return result


def pretrain(cfg: PretrainConfig, run_dir, accelerator, model, tokenizer, train_set, eval_set) -> dict:
    from torch.utils.data import DataLoader

    from bertcls.core.batching import LengthGroupedBatchSampler
    from bertcls.pretrain import masking, objective

    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "model: %d layers, hidden %d, %d heads, vocab %d, %.2fM parameters (%s)",
        model.config.num_hidden_layers,
        model.config.hidden_size,
        model.config.num_attention_heads,
        model.config.vocab_size,
        n_params / 1e6,
        cfg.model or "random init",
    )
    log.info("instances: %d train, %d held out for evaluation", len(train_set), len(eval_set))
    log.info(
        "%d process(es) on %s, precision %s",
        accelerator.num_processes,
        accelerator.device,
        accelerator.mixed_precision,
    )

    spec = masking.MaskSpec(
        mask_id=tokenizer.mask_token_id,
        special_ids=tuple(tokenizer.all_special_ids),
        vocab_size=len(tokenizer),
        mlm_probability=cfg.mlm_probability,
    )
    dataset = masking.MaskedPairs(train_set, spec, cfg.seed, cfg.whole_word_masking, stream=0)
    eval_data = masking.MaskedPairs(eval_set, spec, cfg.seed, cfg.whole_word_masking, stream=1)
    collate = masking.PretrainCollator(tokenizer.pad_token_id)
    sampler = LengthGroupedBatchSampler(train_set.lengths(), cfg.batch_size, cfg.seed, group_by_length=True)
    # Private generators: creating a DataLoader iterator otherwise draws from the global torch RNG, so
    # the fresh iterator of a resumed run (or an evaluation) would shift every later dropout mask.
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, generator=torch.Generator())
    eval_loader = DataLoader(
        eval_data,
        batch_size=cfg.eval_batch_size,
        shuffle=False,
        collate_fn=collate,
        generator=torch.Generator(),
    )
    task = objective.PretrainingObjective(model)
    optimizer = torch.optim.AdamW(rundir.param_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    task, optimizer, loader = accelerator.prepare(task, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / cfg.gradient_accumulation_steps)
    step_limits = [s for s in (cfg.max_steps, cfg.epochs and cfg.epochs * steps_per_epoch) if s is not None]
    total_steps = min(step_limits) if step_limits else None
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None

    state = {
        "epoch": 0,
        "batches_done": 0,
        "global_step": 0,
        "elapsed_s": 0.0,
        "train_tokens": 0,
        "train_seconds": 0.0,
        "stopped_by": None,
        "data_fingerprint": train_set.fingerprint(),
    }
    clock = {"start": time.perf_counter(), "base": 0.0}

    def elapsed() -> float:
        return clock["base"] + time.perf_counter() - clock["start"]

    def fraction(step: int) -> float:
        """How far the run is: the closest of the step and time limits decides the schedule."""
        parts = [step / total_steps] if total_steps else []
        if budget_s:
            parts.append(elapsed() / budget_s)
        return max(parts) if parts else 1.0

    # Not passed to accelerator.prepare: it would step the schedule once per process under DDP.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(fraction(s), cfg.warmup_ratio)
    )
    history: list[dict] = []
    if cfg.resume:
        fingerprint = state["data_fingerprint"]
        state = checkpoint.load(
            run_dir.checkpoint, accelerator.unwrap_model(task).model, optimizer, scheduler
        )
        if state.get("data_fingerprint") != fingerprint:
            raise UserError(
                f"{run_dir.work}: the corpus, tokenizer or instance options differ from the interrupted run; "
                f"resume with the same --config {run_dir.work}/run_config.yaml"
            )
        history = rundir.restored_history(run_dir, state["global_step"])
        clock["base"] = state["elapsed_s"]
        log.info(
            "resumed at epoch %d, step %d (%.1f min in)",
            state["epoch"],
            state["global_step"],
            state["elapsed_s"] / 60,
        )

    state["precision"] = accelerator.mixed_precision  # what --precision auto resolved to, for the report
    # RNG as of the last optimizer step: a Ctrl-C mid-batch must not save dropout draws of a batch
    # that the resumed run will replay.
    boundary_rng = checkpoint.rng_state()

    def save_checkpoint() -> None:
        state["elapsed_s"] = elapsed()
        if accelerator.is_main_process:
            checkpoint.save(
                run_dir.checkpoint,
                accelerator.unwrap_model(task).model.state_dict(),
                optimizer,
                scheduler,
                state,
                boundary_rng,
                history,
            )
            rundir.write_history(run_dir.work / rundir.HISTORY_FILE, history)
        accelerator.wait_for_everyone()

    def run_eval() -> None:
        if not len(eval_set):
            return
        m = objective.evaluate(task, eval_loader, accelerator.device)
        history.append({"type": "eval", "step": state["global_step"], "elapsed_s": round(elapsed(), 1)} | m)
        log.info(
            "eval step %d: mlm_loss=%.4f mlm_acc=%.4f nsp_loss=%.4f nsp_acc=%.4f",
            state["global_step"],
            m["mlm_loss"],
            m["mlm_accuracy"],
            m["nsp_loss"],
            m["nsp_accuracy"],
        )

    def done() -> str | None:
        if total_steps is not None and state["global_step"] >= total_steps:
            return "steps"
        if budget_s and elapsed() >= budget_s:
            return "time"
        return None

    # ---- loop
    task.train()
    if not cfg.resume:
        run_eval()  # step 0: the untrained baseline of the curves (and all there is with --max-steps 0)
    bar = progress(
        total=total_steps,
        initial=state["global_step"],
        desc="pretrain",
        disable=not accelerator.is_main_process,
    )
    meter = objective.LossMeter()
    try:
        while not state["stopped_by"]:
            state["stopped_by"] = done()
            if state["stopped_by"]:
                break
            # accelerate's loader re-sets the sampler's epoch from its own pass counter on every __iter__;
            # that counter restarts at 0 in a resumed process, so set it (and, through it, the sampler).
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(state["epoch"])
            sampler.set_epoch(state["epoch"])
            dataset.set_epoch(state["epoch"])
            batches = (
                accelerator.skip_first_batches(loader, state["batches_done"])
                if state["batches_done"]
                else loader
            )
            t0 = time.perf_counter()
            micro = 0
            for batch in batches:
                last = state["batches_done"] + micro + 1 >= len(loader)
                boundary = (micro + 1) % cfg.gradient_accumulation_steps == 0 or last
                with nullcontext() if boundary else accelerator.no_sync(task), accelerator.autocast():
                    r = task(**batch)
                    loss = r["mlm_loss"] + r["nsp_loss"]
                accelerator.backward(loss / cfg.gradient_accumulation_steps)
                micro += 1
                meter.add(r, int(batch["attention_mask"].sum()) * accelerator.num_processes)
                if not boundary:
                    continue
                boundary_rng = optimizer_step(
                    accelerator, task, optimizer, scheduler, cfg.max_grad_norm, state, micro, len(loader)
                )
                micro = 0
                bar.update(1)
                step = state["global_step"]
                if step % cfg.logging_steps == 0:
                    now = time.perf_counter()
                    state["train_seconds"] += now - t0
                    t0 = now
                    rec = meter.record(step, scheduler.get_last_lr()[0], elapsed())
                    state["train_tokens"] += rec.pop("_tokens")
                    history.append(rec)
                    bar.set_postfix(
                        mlm=f"{rec['mlm_loss']:.3f}",
                        nsp=f"{rec['nsp_loss']:.3f}",
                        tok_s=f"{rec['tokens_per_s']:.0f}",
                    )
                    log.debug("train %s", rec)
                    rundir.write_history(run_dir.work / rundir.HISTORY_FILE, history)
                stop = done()
                if step % cfg.eval_steps == 0 or stop:
                    now = time.perf_counter()
                    state["train_seconds"] += now - t0
                    run_eval()
                    state["stopped_by"] = stop
                    save_checkpoint()
                    t0 = time.perf_counter()
                    meter.t0 += t0 - now  # evaluation time is not training throughput
                if stop:
                    break
            state["train_seconds"] += time.perf_counter() - t0
    except KeyboardInterrupt:
        bar.close()
        save_checkpoint()
        raise rundir.interrupted("pretrain", run_dir, state["global_step"]) from None
    bar.close()
    if meter.batches:  # steps since the last log line
        rec = meter.record(state["global_step"], scheduler.get_last_lr()[0], elapsed())
        state["train_tokens"] += rec.pop("_tokens")
        history.append(rec)
    state["elapsed_s"] = elapsed()
    log.info(
        "pretraining done: %d steps in %.1f min (%s limit)",
        state["global_step"],
        elapsed() / 60,
        state["stopped_by"],
    )
    if not accelerator.is_main_process:
        return {}
    return finish(
        cfg,
        run_dir,
        accelerator.unwrap_model(task).model,
        tokenizer,
        state,
        history,
        n_params,
        len(train_set),
        len(eval_set),
    )


# ---------------------------------------------------------------------------------------------------- save
def finish(
    cfg: PretrainConfig,
    run_dir: rundir.RunDir,
    model,
    tokenizer,
    state: dict,
    history: list[dict],
    n_params: int,
    n_train: int,
    n_eval: int,
) -> dict:
    """Write the pretrained model into the run's working directory (``publish`` moves it into place)."""
    from bertcls.core.io import atomic_write_text
    from bertcls.core.plots import pretraining_curves
    from bertcls.core.report import pretrain_card

    out = run_dir.work
    model.config.architectures = ["BertForPreTraining"]
    rundir.save_model_dir(model, tokenizer, out)
    rundir.write_history(out / rundir.HISTORY_FILE, history)
    evals = [h for h in history if h["type"] == "eval"]
    secs = max(1e-9, state["train_seconds"])
    result = {
        "eval": {k: v for k, v in evals[-1].items() if k != "type"} if evals else None,
        "train": {
            "steps": state["global_step"],
            "epochs_completed": state["epoch"],
            "stopped_by": state["stopped_by"],
            "minutes": round(state["elapsed_s"] / 60, 2),
            "train_seconds": round(secs, 2),
            "tokens": state["train_tokens"],
            "tokens_per_s": round(state["train_tokens"] / secs, 1),
            "steps_per_s": round(state["global_step"] / secs, 4),
            "precision": state["precision"],
            "n_train_instances": n_train,
            "n_eval_instances": n_eval,
        },
        "model": {
            "parameters": n_params,
            "layers": model.config.num_hidden_layers,
            "hidden": model.config.hidden_size,
            "heads": model.config.num_attention_heads,
            "intermediate": model.config.intermediate_size,
            "vocab_size": model.config.vocab_size,
            "init": cfg.model or "random",
        },
        "output_dir": str(run_dir.final),
    }
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2, ensure_ascii=False))
    pretraining_curves(history, out / "learning_curve.png", run_dir.final.name)
    atomic_write_text(out / "README.md", pretrain_card(cfg, run_dir.final, result))
    if not cfg.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return result


def summarize(result: dict) -> str:
    """What `bertcls pretrain` prints: held-out scores, time, where the model is (all of it in metrics.json)."""
    if not result:
        return ""
    ev, tr = result["eval"], result["train"]
    lines = []
    if ev:
        lines += [
            f"{'held-out':<10} {'rows':>6} {'MLM acc':>9} {'MLM loss':>9} {'NSP acc':>9} {'NSP loss':>9}",
            f"{'eval':<10} {ev['n']:>6} {ev['mlm_accuracy']:>9.4f} {ev['mlm_loss']:>9.4f} "
            f"{ev['nsp_accuracy']:>9.4f} {ev['nsp_loss']:>9.4f}",
        ]
    lines.append(
        f"pretrained {tr['steps']} steps in {tr['minutes']:.1f} min ({tr['tokens_per_s']:.0f} tokens/s, "
        f"{tr['stopped_by'] or 'no'} limit)"
    )
    out = result["output_dir"]
    lines.append(f"model saved to {out} (all metrics: {Path(out) / 'metrics.json'})")
    return "\n".join(lines)
