"""``bertcls train``: fine-tune a BERT-family checkpoint for text classification.

Reads top to bottom: setup (options from ``train.config``; data, labels, model and run directory from
``train.prepare``; loaders), loop (train, evaluate, checkpoint, early stop), save (best weights in HF
format, metrics, plots, model card in ``core.report``), then the finished run replaces ``--output-dir``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from bertcls.core import checkpoint, metrics, rundir, tracking
from bertcls.core.cls_only import cls_only
from bertcls.core.config import to_dict
from bertcls.core.decision import positive_class
from bertcls.core.language import language_fit
from bertcls.core.losses import class_weight_tensor, make_loss
from bertcls.core.multilabel import init_head_to_priors, label_priors
from bertcls.core.runtime import adamw, check_loss, make_accelerator, optimizer_step, progress
from bertcls.core.scoring import label_targets, scalar, score
from bertcls.train.config import TrainConfig
from bertcls.train.prepare import (
    Splits,
    build_model,
    check_label_options,
    prepare,
)

log = logging.getLogger("bertcls")


# ---------------------------------------------------------------------------------------------------- run
def run(cfg: TrainConfig, on_eval=None, distill=None) -> dict:
    """``on_eval(value, progress)``: called after every validation with the --metric value and the
    run's ``{"step", "epoch", "samples"}`` (optimizer steps, epochs as a fraction, training examples seen); returning True
    stops the run there like early stopping (``bertcls tune``'s pruner). ``distill``: a
    ``compress.distill.Distillation`` (the teacher's soft targets and the distillation loss)."""
    from accelerate.utils import set_seed

    if cfg.seeds is not None:  # one run per seed, summarised (train.seeds)
        from bertcls.train import seeds

        return seeds.run(cfg, run)
    if cfg.cv is not None:  # K-fold cross-validation (train.cv)
        from bertcls.train import cv

        return cv.run(cfg, run)
    if cfg.method == "setfit":  # few-shot: contrastive encoder training + logistic regression
        from bertcls.train import fewshot

        return fewshot.run(cfg)
    # ---- setup: everything that can fail on user input happens before the run directory exists
    p = prepare(cfg)
    model_path, run_dir, splits, labels, tokenizer = p.model_path, p.run_dir, p.splits, p.labels, p.tokenizer
    set_seed(cfg.seed)
    model = build_model(model_path, labels, cfg.multi_label, tokenizer, cfg.dropout)
    check_label_options(cfg, labels, model)
    tracking.check_installed(cfg.report_to)
    accelerator = make_accelerator(cfg.precision, cfg.gradient_accumulation_steps)
    # cls_only: the last layer computes [CLS] alone, the only position the classifier reads (exact);
    # not when distillation matches every position of the student's layers to the teacher's
    layers_matched = distill is not None and distill.layer_map is not None
    with rundir.session(run_dir, cfg, accelerator), cls_only(model, enabled=not layers_matched):
        result = train(
            cfg, run_dir, accelerator, model, tokenizer, splits, labels, model_path, on_eval, distill
        )
    return result


def train(
    cfg: TrainConfig,
    run_dir,
    accelerator,
    model,
    tokenizer,
    splits: Splits,
    labels,
    model_path,
    on_eval=None,
    distill=None,
) -> dict:
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    from bertcls.core.batching import Collator, LengthGroupedBatchSampler
    from bertcls.core.longtext import encode_long

    multi = cfg.multi_label
    log.info(
        "train %d / validation %d / test %d rows; labels: %s",
        len(splits.train),
        len(splits.validation),
        len(splits.test) if splits.test else 0,
        labels,
    )
    if multi and (unlabelled := sum(1 for lab in splits.train.labels if not lab)):
        log.info("%d training row(s) have no label (valid for multi-label)", unlabelled)
    if splits.test is not None and (unseen := splits.test.label_set() - set(labels)):
        log.warning("test labels never seen in training (reported, always wrong): %s", sorted(unseen))

    long_text = cfg.long_text_spec()
    enc_train = encode_long(tokenizer, splits.train.texts, splits.train.pairs, cfg.max_length, long_text)
    targets = label_targets(splits.train, labels, multi)
    for e in enc_train:  # with --long-text chunks every window of a text carries the text's label
        e["labels"] = targets[e.pop("doc")]
    if len(enc_train) > len(splits.train):
        log.info(
            "--long-text chunks: %d training texts read as %d windows", len(splits.train), len(enc_train)
        )
    if distill is not None:  # the teacher's logits on every row (and unlabelled rows) as soft targets
        enc_train = distill.annotate(enc_train, tokenizer, labels)
    if multi and cfg.prior_init and not cfg.resume and init_head_to_priors(model, label_priors(targets)):
        log.info("classification head starts at the training label frequencies (--prior-init)")
    enc_val = encode_long(
        tokenizer, splits.validation.texts, splits.validation.pairs, cfg.max_length, long_text
    )
    sampler = LengthGroupedBatchSampler(
        [len(e["input_ids"]) for e in enc_train], cfg.batch_size, cfg.seed, cfg.group_by_length
    )
    # Own generator: creating a DataLoader iterator draws a base seed, and drawing it from the global RNG
    # would shift dropout masks after a mid-epoch resume (which creates one more iterator).
    loader = DataLoader(
        enc_train,
        batch_sampler=sampler,
        collate_fn=Collator(tokenizer.pad_token_id, multi),
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    head_lr = cfg.learning_rate * cfg.head_lr_multiplier if cfg.head_lr_multiplier != 1 else None
    optimizer = adamw(rundir.param_groups(model, cfg.weight_decay, head_lr), cfg.learning_rate)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    if distill is not None:  # hooks for the intermediate-layer loss, when asked for
        distill.attach(accelerator.unwrap_model(model))
    forward_kwargs = distill.forward_kwargs if distill is not None else {}
    log.info(
        "%d process(es) on %s, precision %s, %d batches per epoch per process",
        accelerator.num_processes,
        accelerator.device,
        accelerator.mixed_precision,
        len(loader),
    )
    steps_per_epoch = math.ceil(len(loader) / cfg.gradient_accumulation_steps)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    epochs = math.ceil(total_steps / steps_per_epoch)
    # Not passed to accelerator.prepare: it would step the schedule once per process under DDP.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    weights = class_weight_tensor(cfg, targets, labels)
    if weights is not None:
        log.info(
            "loss weights (--class-weights %s): %s", cfg.class_weights, dict(zip(labels, weights.tolist()))
        )
        weights = weights.to(accelerator.device)
    loss_fn = make_loss(cfg.loss, multi, weights, cfg.focal_gamma)
    if distill is not None:
        loss_fn = distill.loss(loss_fn)

    state = {
        "epoch": 0,
        "batches_done": 0,
        "global_step": 0,
        "best": None,
        "best_step": None,
        "bad_evals": 0,
        "train_seconds": 0.0,
        "samples_seen": 0,
        "stopped_early": False,
    }
    history: list[dict] = []
    tracker = tracking.Tracker(
        cfg.report_to if accelerator.is_main_process else [], run_dir.work, cfg, run_dir.final
    )
    tracker.params(to_dict(cfg))
    if cfg.resume:
        state = checkpoint.load(run_dir.checkpoint, accelerator.unwrap_model(model), optimizer, scheduler)
        history = rundir.restored_history(run_dir, state["global_step"])
        log.info("resumed at epoch %d, step %d", state["epoch"], state["global_step"])
    state["precision"] = accelerator.mixed_precision  # what --precision auto resolved to, for the report
    # binary tasks: the class PR-AUC, the PR curve and --tune-threshold are about
    state["positive"] = (
        None if multi or len(labels) != 2 else positive_class(labels, targets, cfg.positive_label)
    )
    # Before the first step: a model that cannot read the data is named now, not after the run.
    fit = language_fit(splits.train.texts, tokenizer, cfg.model)
    state["language_fit"] = fit.as_dict()
    if fit.warning:
        log.warning(fit.warning)

    # RNG as of the last optimizer step: a Ctrl-C mid-batch must not save dropout draws of a batch
    # that the resumed run will replay.
    boundary_rng = checkpoint.rng_state()

    def save_checkpoint() -> None:
        weights = accelerator.unwrap_model(model).state_dict()
        rundir.save_checkpoint(
            accelerator, run_dir, weights, optimizer, scheduler, state, boundary_rng, history
        )

    def evaluate_and_checkpoint() -> bool:
        """Returns True when early stopping says stop."""
        m, _ = score(
            accelerator.unwrap_model(model),
            enc_val,
            splits.validation,
            labels,
            multi,
            cfg.eval_batch_size,
            tokenizer.pad_token_id,
            tune=multi,  # select on what the saved model will do: F1 at its tuned thresholds
            pooling=long_text.pooling,
            positive=state["positive"],
            shard=True,  # every rank is here: each scores 1/N of validation
        )
        record = {
            "type": "eval",
            "step": state["global_step"],
            "epoch": round(state["epoch"] + state["batches_done"] / max(1, len(loader)), 3),
        } | scalar(m)
        history.append(record)
        tracker.record(record)
        value = m.get(cfg.metric)
        log.info(
            "eval step %d: %s",
            state["global_step"],
            ", ".join(f"{k}={v:.4f}" for k, v in scalar(m).items() if k != "n"),
        )
        if value is not None and metrics.is_better(cfg.metric, value, state["best"]):
            state.update(best=value, best_step=state["global_step"], bad_evals=0)
            if accelerator.is_main_process:
                _save_weights(accelerator.unwrap_model(model), run_dir.best)
                (run_dir.best / "validation_metrics.json").write_text(json.dumps(m), encoding="utf-8")
        else:
            state["bad_evals"] += 1
        stop = bool(cfg.early_stopping_patience and state["bad_evals"] >= cfg.early_stopping_patience)
        progress = {"step": state["global_step"], "epoch": record["epoch"], "samples": state["samples_seen"]}
        if on_eval is not None and value is not None and on_eval(value, progress):
            stop = state["stopped_by_caller"] = True
        state["stopped_early"] = stop
        save_checkpoint()
        return stop

    # ---- loop
    model.train()
    bar = progress(
        total=total_steps, initial=state["global_step"], desc="train", disable=not accelerator.is_main_process
    )
    running, running_n = 0.0, 0
    try:
        while state["epoch"] < epochs and state["global_step"] < total_steps and not state["stopped_early"]:
            batches = (
                accelerator.skip_first_batches(loader, state["batches_done"])
                if state["batches_done"]
                else loader
            )
            # accelerate's loader re-seeds the sampler from its own pass counter on every __iter__, and that
            # counter restarts at 0 in a resumed process: pin it to our epoch so batch order is (seed, epoch).
            sampler.set_epoch(state["epoch"])
            if hasattr(batches, "set_epoch"):
                batches.set_epoch(state["epoch"])
            t0 = time.perf_counter()
            micro = 0
            for batch in batches:
                labels_t = batch.pop("labels")
                soft = {k: batch.pop(k) for k in ("teacher", "labeled") if k in batch}  # distillation
                last = state["batches_done"] + micro + 1 >= len(loader)
                boundary = (micro + 1) % cfg.gradient_accumulation_steps == 0 or last
                with nullcontext() if boundary else accelerator.no_sync(model), accelerator.autocast():
                    outputs = model(**batch, **forward_kwargs)
                    loss = loss_fn(outputs.logits.float(), labels_t, **soft)
                    if distill is not None:
                        loss = loss + distill.layer_loss(outputs, batch)
                accelerator.backward(loss / cfg.gradient_accumulation_steps)
                micro += 1
                value = loss.item()
                check_loss("train", value, state["global_step"] + 1)
                running += value
                running_n += 1
                state["samples_seen"] += len(labels_t) * accelerator.num_processes
                if not boundary:
                    continue
                boundary_rng = optimizer_step(
                    accelerator, model, optimizer, scheduler, cfg.max_grad_norm, state, micro, len(loader)
                )
                micro = 0
                bar.update(1)
                if state["global_step"] % cfg.logging_steps == 0:
                    rec = {
                        "type": "train",
                        "step": state["global_step"],
                        "loss": running / running_n,
                        "lr": scheduler.get_last_lr()[0],
                    }
                    history.append(rec)
                    tracker.record(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.4f}")
                    running, running_n = 0.0, 0
                if cfg.eval_steps and state["global_step"] % cfg.eval_steps == 0:
                    state["train_seconds"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    if evaluate_and_checkpoint():
                        break
                if state["global_step"] >= total_steps:
                    break
            state["train_seconds"] += time.perf_counter() - t0
            if state["stopped_early"]:
                break
            finished = state["global_step"] >= total_steps or state["epoch"] >= epochs
            evaluated_now = (
                bool(history)
                and history[-1].get("type") == "eval"
                and history[-1].get("step") == state["global_step"]
            )
            if (not cfg.eval_steps or finished) and not evaluated_now and evaluate_and_checkpoint():
                break
    except KeyboardInterrupt:
        bar.close()
        save_checkpoint()
        tracker.close(failed=True)
        raise rundir.interrupted("train", run_dir, state["global_step"]) from None
    except BaseException:
        bar.close()  # before the CLI's one-line error, not after it when the bar is collected
        tracker.close(failed=True)
        raise
    bar.close()
    log.info("training done: %d steps in %.1fs", state["global_step"], state["train_seconds"])

    # ---- save: best weights -> the run directory is the model
    accelerator.wait_for_everyone()  # rank 0 may still be writing the best weights the others read
    # Without accelerate's autocast wrapper: the final report scores the weights as saved, in fp32, as
    # `bertcls evaluate` and every user of the directory will. Scored in bf16 they tied probabilities and
    # moved a tiny model's test PR-AUC by 0.11 against `evaluate`.
    final = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    has_best = (run_dir.best / "model.safetensors").is_file()
    if has_best:
        from safetensors.torch import load_file

        final.load_state_dict(load_file(str(run_dir.best / "model.safetensors")), strict=False)
    from bertcls.core.report import FinishedRun, finish_run, share_scoring

    finished = FinishedRun(
        cfg, run_dir, final, tokenizer, splits, labels, state, history, model_path, enc_val
    )
    if _same_weights_everywhere(accelerator, has_best):
        share_scoring(finished)
        log.info("final scoring: validation and test split across %d processes", accelerator.num_processes)
    if not accelerator.is_main_process:
        return {}
    try:
        result = finish_run(finished)
        tracker.final(result, run_dir.work, state["global_step"])
    except BaseException:
        tracker.close(failed=True)
        raise
    tracker.close()
    return result


def _same_weights_everywhere(accelerator, has_best: bool) -> bool:
    """Whether the ranks of a distributed run may split the final scoring: they all hold the same
    weights only if all of them could read rank 0's best checkpoint (nodes without a shared file system
    cannot; rank 0 then scores alone, as a single process would)."""
    if accelerator.num_processes < 2:
        return False
    import torch.distributed as dist

    seen: list = [None] * accelerator.num_processes
    dist.all_gather_object(seen, has_best)
    return len(set(seen)) == 1


def _save_weights(model, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "model.safetensors.tmp"
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, directory / "model.safetensors")


def summarize(result: dict) -> str:
    """What `bertcls train` prints: the essentials of the best model; every number is in metrics.json."""
    if not result:
        return ""
    if "best_seed" in result:
        from bertcls.train.seeds import summary_text

        return summary_text(result)
    if "folds" in result:
        from bertcls.train.cv import summary_text

        return summary_text(result)
    from bertcls.core.report import summary_table

    return summary_table(result)
