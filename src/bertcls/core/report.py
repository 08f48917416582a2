"""End of a run: save the model in HF format, score it, draw plots, write the model card and the short
summary the CLI prints. `train` and `pretrain` both finish here."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertcls import __version__
from bertcls.core import metrics, plots
from bertcls.core.cards import fmt, model_card
from bertcls.core.io import atomic_write_text
from bertcls.core.models import META_FILE
from bertcls.core.multilabel import label_priors, learning_checks
from bertcls.core.rundir import HISTORY_FILE, RunDir, save_model_dir, write_history
from bertcls.core.scoring import (
    label_summary,
    label_targets,
    scalar,
    score,
    score_logits,
    split_scalars,
    text_logits,
)

log = logging.getLogger("bertcls")

# What a finished `bertcls train` run directory holds (besides tokenizer files, whose names depend on
# the tokenizer, and checkpoints/ when --keep-checkpoints is set). Tested end to end.
RUN_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    META_FILE,
    "run_config.yaml",
    "metrics.jsonl",
    "metrics.json",
    "learning_curve.png",
    "confusion_matrix.png",
    "reliability.png",
    "pr_curve.png",  # binary tasks
    "README.md",
    "train.log",
    "baseline.skops",  # unless --no-baseline
)


@dataclass
class FinishedRun:
    """Everything the end of a `bertcls train` run reports on."""

    cfg: Any  # TrainConfig
    run: RunDir
    model: Any
    tokenizer: Any
    splits: Any  # train.Splits
    labels: list[str]
    state: dict
    history: list[dict]
    model_path: str
    enc_val: list[dict]

    @property
    def multi(self) -> bool:
        return bool(self.cfg.multi_label)

    val_logits: np.ndarray | None = None  # validation logits of the final model, once computed
    # test logits computed by every rank of a distributed run (share_scoring), from the weights as
    # loaded: a --calibrate temperature baked in later divides them
    test_logits: np.ndarray | None = None

    @property
    def positive(self) -> int | None:
        """Binary tasks: the class PR-AUC, the PR curve and --tune-threshold are about."""
        return self.state.get("positive")

    def score(
        self, enc: list[dict], data, thresholds: list[float] | None = None, tune: bool = False, decision=None
    ) -> tuple[dict, np.ndarray]:
        t = None if thresholds is None else np.asarray(thresholds)
        pad = self.tokenizer.pad_token_id
        cfg = self.cfg
        return score(
            self.model,
            enc,
            data,
            self.labels,
            self.multi,
            cfg.eval_batch_size,
            pad,
            t,
            tune,
            cfg.pooling,
            decision,
            self.positive,
        )

    def score_validation(self, tune: bool = False, decision=None) -> tuple[dict, np.ndarray]:
        """Validation metrics of the final model; its logits are computed once and kept."""
        if self.val_logits is None:
            _, self.val_logits = self.score(self.enc_val, self.splits.validation)
        m = score_logits(
            self.val_logits,
            self.splits.validation,
            self.labels,
            self.multi,
            tune=tune,
            decision=decision,
            positive=self.positive,
        )
        return m, self.val_logits

    def test_encodings(self) -> list[dict]:
        from bertcls.core.longtext import encode_long

        test, cfg = self.splits.test, self.cfg
        return encode_long(self.tokenizer, test.texts, test.pairs, cfg.max_length, cfg.long_text_spec())

    def targets(self, data) -> np.ndarray:
        """Class ids (-1 = unknown label), or the 0/1 matrix for multi-label."""
        t = label_targets(data, self.labels, self.multi)
        return np.stack(t).astype(int) if self.multi else np.asarray(t)


def share_scoring(r: FinishedRun) -> None:
    """A distributed run's final scoring, split across its ranks: every rank calls this (a collective)
    with the final weights loaded, each scores 1/N of validation and test (``batching.sharded_logits``),
    and rank 0's :func:`finish_run` then reports from those logits instead of scoring everything alone."""
    cfg, pad = r.cfg, r.tokenizer.pad_token_id

    def logits(enc: list[dict], n: int) -> np.ndarray:
        return text_logits(r.model, enc, n, cfg.eval_batch_size, pad, cfg.pooling, shard=True)

    r.val_logits = logits(r.enc_val, len(r.splits.validation))
    if r.splits.test is not None:
        r.test_logits = logits(r.test_encodings(), len(r.splits.test))


def _test_scores(r: FinishedRun, thresholds, decision, temperature: float) -> tuple[dict, np.ndarray]:
    """Test metrics and logits of the final model: from the ranks' shares when a distributed run
    computed them (:func:`share_scoring`; ``temperature``: the --calibrate one baked in since), else
    scored here."""
    test = r.splits.test
    if r.test_logits is None:
        return r.score(r.test_encodings(), test, thresholds, decision=decision)
    logits = r.test_logits / temperature
    t = None if thresholds is None else np.asarray(thresholds)
    return score_logits(logits, test, r.labels, r.multi, t, decision=decision, positive=r.positive), logits


def _validation_scores(r: FinishedRun) -> tuple[dict, list[float] | None, np.ndarray | None]:
    """Validation metrics of the best model (for multi-label with thresholds tuned on validation), and
    its validation logits when they were computed (the ensemble needs them)."""
    saved = r.run.best / "validation_metrics.json"
    cfg = r.cfg
    later = cfg.ensemble or cfg.tune_threshold or cfg.calibrate != "none"  # these need validation logits
    if not r.multi and saved.is_file() and not later:
        # the best checkpoint's validation scores, computed when it was chosen
        return json.loads(saved.read_text(encoding="utf-8")), None, None
    # one forward pass: multi-label thresholds are tuned on these logits and the metrics taken at them
    val_m, val_logits = r.score_validation(tune=r.multi)
    if not r.multi:
        return val_m, None, val_logits
    thresholds = val_m.pop("thresholds")
    log.info("tuned thresholds: %s", dict(zip(r.labels, thresholds)))
    y_val = r.targets(r.splits.validation)
    probs = metrics.sigmoid(val_logits)
    priors = label_priors(label_targets(r.splits.train, r.labels, True))
    prior_m, warnings = learning_checks(y_val, probs, priors, r.labels, r.cfg.metric, val_m)
    val_m["label_prior_predictor"] = scalar(prior_m)
    for w in warnings:
        log.warning(w)
    val_m["warnings"] = warnings
    return val_m, thresholds, val_logits


def _train_summary(r: FinishedRun) -> dict:
    state = r.state
    return {
        "steps": state["global_step"],
        "epochs_completed": state["epoch"],
        "runtime_s": round(state["train_seconds"], 2),
        "samples_per_s": round(state["samples_seen"] / max(state["train_seconds"], 1e-9), 2),
        "best_step": state["best_step"],
        "metric": r.cfg.metric,
        "best_" + r.cfg.metric: state["best"],
        "stopped_early": state["stopped_early"],
        "precision": state["precision"],
        "method": getattr(r.cfg, "method", "finetune"),
        "n_train": len(r.splits.train),
        "n_validation": len(r.splits.validation),
        "label_counts": label_summary(r.splits.train),
        "n_train_without_label": sum(1 for lab in r.splits.train.labels if not lab) if r.multi else 0,
        "language_fit": state.get("language_fit"),
    }


def finish_run(r: FinishedRun) -> dict:
    """Write the finished model into the run's working directory (``publish`` moves it into place)."""
    from bertcls.core import probabilities

    cfg, out = r.cfg, r.run.work
    calibrated = probabilities.calibrate(r)  # first: everything after sees the calibrated model
    val_m, thresholds, val_logits = _validation_scores(r)
    decision = probabilities.decide(r, val_logits)
    if decision is not None:
        val_m = r.score_validation(decision=decision)[0] | {"decision_threshold": decision.threshold}
    if fit_warning := r.state.get("language_fit", {}).get("warning"):
        val_m.setdefault("warnings", []).insert(0, fit_warning)
    result: dict = {"validation": val_m}
    shown, shown_name, shown_data, shown_logits = val_m, "validation", r.splits.validation, val_logits
    test_logits = None
    if r.splits.test is not None:
        test = r.splits.test
        temperature = calibrated["temperature"] if calibrated else 1.0
        result["test"], test_logits = _test_scores(r, thresholds, decision, temperature)
        shown, shown_name, shown_data, shown_logits = result["test"], "test", test, test_logits
        log.info("test: %s", ", ".join(f"{k}={v:.4f}" for k, v in scalar(shown).items() if k != "n"))
        probabilities.calibrate_test(calibrated, test_logits, r.targets(test), r.multi)
    if calibrated is not None:
        result["calibration"] = calibrated
    result["train"] = _train_summary(r)
    compared, compared_meta = _compare(r, val_logits, test_logits)
    result |= compared
    meta = (
        {
            "bertcls_version": __version__,
            "task": "multi_label" if r.multi else "single_label",
            "labels": r.labels,
            "thresholds": thresholds,
            "max_length": cfg.max_length,
            "long_text": cfg.long_text_spec().as_dict(),
            "text_column": cfg.text_column,
            "text_pair_column": cfg.text_pair_column,
            "label_column": cfg.label_column,
            "base_model": cfg.model,
            "base_model_path": r.model_path,
            "metrics": split_scalars(result),
        }
        | probabilities.meta(r, calibrated, decision)
        | compared_meta
        # how to load a model that is not a transformers classifier (core.sentence_model)
        | getattr(r.model, "bertcls_meta", dict)()
    )
    save_model_dir(r.model, r.tokenizer, out, (META_FILE, meta))
    write_history(out / HISTORY_FILE, r.history)
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2, ensure_ascii=False))
    title = f"{cfg.name or r.run.final.name}"
    plots.learning_curve(r.history, out / "learning_curve.png", cfg.metric, title)
    per_label = " per label" if r.multi else ""
    plots.confusion(
        shown, out / "confusion_matrix.png", f"{shown_name} confusion matrix{per_label} ({title})"
    )
    if shown_logits is None:  # single-label validation scores came from the checkpoint: logits now
        _, shown_logits = r.score_validation()
    probabilities.draw(
        out,
        metrics.sigmoid(shown_logits) if r.multi else metrics.softmax(shown_logits),
        r.targets(shown_data),
        r.multi,
        r.labels,
        r.positive,
        decision,
        calibrated and calibrated["temperature"],
        f"{shown_name}, the model alone ({title})",
    )
    atomic_write_text(out / "README.md", model_card(cfg, r.run.final, result, meta))
    if not cfg.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    result["output_dir"] = str(r.run.final)
    return result


def metrics_lines(m: dict, split: str, more: list[tuple[str, dict]] = ()) -> list[str]:
    """A small table of the essentials of one split's metrics (single- or multi-label): a header, the
    model's row, then one row per ``more`` entry (the baseline, the ensemble)."""
    multi = "f1_samples" in m
    cols = (
        [("micro-F1", "f1_micro"), ("macro-F1", "f1_macro"), ("AP macro", "ap_macro"), ("loss", "loss")]
        if multi
        else [("accuracy", "accuracy"), ("macro-F1", "f1_macro"), ("loss", "loss")]
    )
    if "pr_auc" in m:  # binary: the positive class's precision-recall area
        cols.append(("PR-AUC", "pr_auc"))
    cols.append(("ECE", "ece"))
    width = max([10] + [len(name) for name, _ in more])
    head = f"{'split':<{width}} {'rows':>6}" + "".join(f" {name:>9}" for name, _ in cols)
    rows = [(split, m), *more]
    return [head] + [
        f"{name:<{width}} {x['n']:>6}" + "".join(f" {fmt(x.get(k, '')):>9}" for _, k in cols)
        for name, x in rows
    ]


def _compare(r: FinishedRun, val_logits, test_logits) -> tuple[dict, dict]:
    """The TF-IDF baseline beside the model, and the ensemble when asked (core.baseline)."""
    if not r.cfg.baseline:
        return {}, {}
    from bertcls.core import baseline

    probs = metrics.sigmoid if r.multi else metrics.softmax
    bert_val = probs(val_logits) if r.cfg.ensemble else None
    bert_test = None if test_logits is None else probs(test_logits)
    cfg = r.cfg
    return baseline.compare(
        r.splits,
        r.labels,
        r.multi,
        cfg.metric,
        bert_val,
        bert_test,
        r.run.work,
        cfg.ensemble_method,
        r.positive,
        cfg.tune_threshold,
    )


def _compared_rows(result: dict, split: str) -> list[tuple[str, dict]]:
    rows = []
    if split in result.get("baseline", {}):
        rows.append((f"{split} TF-IDF", result["baseline"][split]))
    if split in result.get("ensemble", {}):
        rows.append((f"{split} ensemble", result["ensemble"][split]))
    return rows


def summary_table(result: dict) -> str:
    """The few lines `bertcls train` ends with: test (else validation) essentials beside the baseline's,
    time, where it is."""
    from bertcls.core.baseline import comparison_line

    split = "test" if "test" in result else "validation"
    tr = result["train"]
    out = result.get("output_dir", "")
    versus = comparison_line(result, tr.get("metric", "f1_macro"))
    return "\n".join(
        metrics_lines(result[split], split, _compared_rows(result, split))
        + ([versus] if versus else [])
        + [
            f"trained {tr['steps']} steps in {tr['runtime_s']:.1f} s"
            + (" (stopped early)" if tr["stopped_early"] else ""),
            f"model saved to {out} (all metrics: {Path(out) / 'metrics.json'})",
        ]
        + [f"warning: {w}" for w in result["validation"].get("warnings", [])]
        + (
            [f"warning: no TF-IDF baseline: {result['baseline_skipped']}"]
            if "baseline_skipped" in result
            else []
        )
    )
