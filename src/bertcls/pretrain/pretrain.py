"""``bertcls pretrain``: BERT pretraining with masked language modelling + next sentence prediction.

From scratch (``--tokenizer DIR --preset tiny``: random initialisation of a BERT miniature) or continued
from a checkpoint (``--model DIR``: its own tokenizer; MLM/NSP heads are created when it has none).
Reads top to bottom: setup (options, corpus -> instances, model, run directory from ``pretrain.prepare``;
loaders), loop (train, evaluate on
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
from pathlib import Path

import torch

from bertcls.core import checkpoint, rundir
from bertcls.core.errors import UserError
from bertcls.core.runtime import adamw, check_loss, make_accelerator, optimizer_step, progress, setup_logging
from bertcls.pretrain.prepare import (
    PretrainConfig,
    build_model,
    load_pretrain_tokenizer,
    plan_run_dir,
    prepare_data,
    set_dropout,
)

log = logging.getLogger("bertcls")

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
    with rundir.session(run_dir, cfg, accelerator):
        result = pretrain(cfg, run_dir, accelerator, model, tokenizer, train_set, eval_set)
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
    optimizer = adamw(rundir.param_groups(model, cfg.weight_decay), cfg.learning_rate)
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
        weights = accelerator.unwrap_model(task).model.state_dict()
        rundir.save_checkpoint(
            accelerator, run_dir, weights, optimizer, scheduler, state, boundary_rng, history
        )

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
                value = meter.add(r, int(batch["attention_mask"].sum()) * accelerator.num_processes)
                check_loss("pretrain", value, state["global_step"] + 1)
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
    except BaseException:
        bar.close()  # before the CLI's one-line error, not after it when the bar is collected
        raise
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
    from bertcls.core.cards import pretrain_card
    from bertcls.core.io import atomic_write_text
    from bertcls.core.plots import pretraining_curves

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
