"""``bertcls tune --config train.yaml --search space.yaml --trials N [--timeout 45m]``: hyperparameter search
for `bertcls train` on Optuna (TPE sampler; median or Hyperband pruner fed by every validation of a trial).

Reads top to bottom: setup (the train options from --config and flags, the search space, the study in a
SQLite file in the run directory, created or resumed), loop (trials: each a normal `train` run in
``trials/trial-NNN`` without the test file; ``--workers`` processes share the study), save (trials.csv,
best_config.yaml for `bertcls train --config`, the optimisation history and parameter importances as
PNGs, tune_summary.json, a README). Like `train`, the run works in ``<output-dir>.partial`` and replaces
``--output-dir`` only when done; Ctrl-C keeps the study, and ``--resume`` continues it without repeating
finished trials.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bertcls.core import metrics
from bertcls.core.config import require, save_yaml
from bertcls.core.errors import UserError
from bertcls.train.config import TrainConfig, train_config
from bertcls.train.tune_space import load_space

log = logging.getLogger("bertcls")

STUDY = "study.db"
STUDY_NAME = "bertcls-tune"
HINT = "pip install 'bertcls[tune]'"


@dataclass
class TuneConfig(TrainConfig):
    search: str | None = None
    """Search space YAML: train options as ranges ({low, high, log, step}), choices (lists) or fixed values."""
    trials: int = 20
    """Trials in all (finished and pruned; a resumed study counts the ones it already has)."""
    timeout: str | None = None
    """Start no new trial after this long (e.g. 45m, 2h, 900s); running trials finish."""
    workers: int = 1
    """Trials run at once, each in its own process with cores / workers threads, sharing the study."""
    output_dir: str | None = None
    """The tune's directory: study.db, trials/, best_config.yaml, trials.csv, plots. Default: runs/tune-<search file>-<time>."""
    pruner: Literal["median", "hyperband", "none"] = "median"
    """Stop unpromising trials early from their validation --metric at each evaluation (use --eval-steps for evaluations within an epoch)."""
    prune_after_epochs: float = 1.0
    """A trial is pruned only after it has trained more than this many epochs (so a run of that many
    epochs always finishes). Evaluations are compared at the same number of training examples seen (batch
    sizes 16 and 32 meet every 800 examples in the first epoch; an epoch's partial last batch can shift
    them apart after it). Pruning from the first evaluation (0) ranked trials by their warm-up: in a
    TREC-6 tune 24 of 38 pruned trials were cut near chance at step 25."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.search), "search", self.search, "give the search space YAML (--search space.yaml)")
        require(self.trials >= 1, "trials", self.trials, "must be >= 1")
        require(self.workers >= 1, "workers", self.workers, "must be >= 1")
        require(self.prune_after_epochs >= 0, "prune_after_epochs", self.prune_after_epochs, "must be >= 0")
        require(self.seeds is None, "seeds", self.seeds, "tune runs one seed per trial; use --seed")
        # the search spaces and the pruner's per-evaluation feedback are fine-tuning's
        require(self.method == "finetune", "method", self.method, "tune searches fine-tuning options")
        timeout_seconds(self.timeout)


def timeout_seconds(text: str | None) -> float | None:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise UserError(f"--timeout={text!r} is invalid: use a positive duration such as 900s, 45m or 2h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# ---------------------------------------------------------------------------------------------------- run
def run(cfg: TuneConfig) -> dict:
    try:
        import optuna
    except ImportError:
        raise UserError(f"bertcls tune needs optuna: {HINT}") from None
    from bertcls.core.io import make_dir, replace_dir
    from bertcls.core.rundir import check_output_dir, partial_dir
    from bertcls.core.runtime import setup_logging

    # ---- setup
    space = load_space(cfg.search, cfg)
    final = Path(cfg.output_dir or f"runs/tune-{Path(cfg.search).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    work = partial_dir(final)
    check_output_dir(final, "tune", overwrite=True if cfg.resume else cfg.overwrite)
    if cfg.resume and not (work / STUDY).is_file():
        raise UserError(f"--output-dir={final}: no interrupted tune to resume (expected {work / STUDY})")
    if not cfg.resume and work.exists():
        if (work / STUDY).is_file() and not cfg.overwrite:
            raise UserError(
                f"{work} holds an interrupted tune; continue it with --resume, pass --overwrite to start "
                f"over, or choose another --output-dir"
            )
        check_output_dir(work, "tune", overwrite=True)
        import shutil

        shutil.rmtree(work)
    make_dir(work)
    setup_logging(work / "tune.log")
    save_yaml(cfg, work / "tune_config.yaml")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(work, cfg, create=True)
    stale = _fail_stale(study)
    done = _finished(study)
    left = max(0, cfg.trials - done)
    log.info(
        "tune: %d trial(s) to run (%d finished%s), %d worker(s), pruner %s; study in %s",
        left,
        done,
        f", {stale} interrupted marked failed" if stale else "",
        cfg.workers,
        cfg.pruner,
        work / STUDY,
    )

    # ---- loop
    jobs = [(cfg, space, str(work), left, i) for i in range(min(cfg.workers, max(left, 1)))]
    try:
        if left and cfg.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(_worker, jobs))
        elif left:
            _worker(jobs[0])
    except KeyboardInterrupt:
        from bertcls.core.runtime import Interrupted

        raise Interrupted(
            f"tune interrupted; the study is kept in {work / STUDY}. Continue with: bertcls tune "
            f"--config {work / 'tune_config.yaml'} --resume"
        ) from None

    # ---- save
    study = _study(work, cfg, create=False)
    summary = _report(study, cfg, space, work)
    setup_logging(None)
    replace_dir(work, final)
    summary["output_dir"] = str(final)
    return summary


def _storage(work: Path):
    """The study's SQLite file, with a lock timeout long enough for workers writing at once."""
    import optuna

    return optuna.storages.RDBStorage(
        f"sqlite:///{work / STUDY}", engine_kwargs={"connect_args": {"timeout": 120}}
    )


def _study(work: Path, cfg: TuneConfig, create: bool, **kw):
    """The study in ``work``: created (or found) with the direction of --metric, or loaded (``kw``: the
    sampler and pruner of a worker)."""
    import optuna

    if not create:
        return optuna.load_study(study_name=STUDY_NAME, storage=_storage(work), **kw)
    direction = "minimize" if cfg.metric in metrics.LOWER_IS_BETTER else "maximize"
    return optuna.create_study(
        study_name=STUDY_NAME, storage=_storage(work), direction=direction, load_if_exists=True
    )


def _fail_stale(study) -> int:
    """Trials left RUNNING by an interrupted tune can never finish: mark them failed (they do not count)."""
    from optuna.trial import TrialState

    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return len(stale)


def _finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def make_pruner(kind: str):
    import optuna

    if kind == "median":  # below the median of earlier trials at the same examples seen, after 3 trials
        return optuna.pruners.MedianPruner(n_startup_trials=3)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def _worker(job) -> None:
    """One process's share of the trials (``left`` in all across workers, counted in the study)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from bertcls.core.runtime import setup_logging, worker_threads

    cfg, space, work, left, index = job
    work = Path(work)
    threads = worker_threads(cfg.threads, cfg.workers)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed + index)
    study = _study(work, cfg, create=False, sampler=sampler, pruner=make_pruner(cfg.pruner))
    total = _finished(study) + left
    stop = MaxTrialsCallback(total, states=(TrialState.COMPLETE, TrialState.PRUNED))
    study.optimize(
        lambda trial: objective(trial, cfg, space, work, threads),
        n_trials=left,
        timeout=timeout_seconds(cfg.timeout),
        callbacks=[stop],
        catch=(),
    )
    setup_logging(None)


def objective(trial, cfg: TuneConfig, space: dict, work: Path, threads: int | None) -> float:
    """One trial: a `bertcls train` run with the sampled options, reporting each validation to the pruner."""
    import optuna

    from bertcls.train.train import run as train_run

    params = {name: p.suggest(trial) for name, p in space.items()}
    out = work / "trials" / f"trial-{trial.number:03d}"
    train_cfg = train_config(
        cfg,
        **params,
        output_dir=str(out),
        overwrite=True,
        resume=False,
        test_file=None,  # trials are chosen on validation; the test set waits for the final model
        baseline=bool(cfg.ensemble),
        name=f"trial {trial.number}",
        report_to=[],
        threads=threads,
    )
    pruned = []

    def on_eval(value: float, progress: dict) -> bool:
        # reported at training examples seen, not optimizer steps: step 25 of batch 16 and of batch 64
        # are different amounts of training; the warm-up epochs are --prune-after-epochs
        trial.report(value, progress["samples"])
        if progress["epoch"] > cfg.prune_after_epochs and trial.should_prune():
            pruned.append(progress["step"])
            return True
        return False

    t0 = time.perf_counter()
    result = train_run(train_cfg, on_eval)
    trial.set_user_attr("seconds", round(time.perf_counter() - t0, 1))
    trial.set_user_attr("dir", str(out.relative_to(work)))
    if pruned:
        raise optuna.TrialPruned(f"pruned at step {pruned[0]}")
    return float(result["validation"][cfg.metric])


# ---------------------------------------------------------------------------------------------------- save
def _report(study, cfg: TuneConfig, space: dict, work: Path) -> dict:
    from optuna.trial import TrialState

    from bertcls.train.tune_report import write_report

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise UserError(
            f"tune: none of the {len(trials)} trial(s) finished (pruned or failed); see {work / 'tune.log'} "
            f"and the trials in {work / 'trials'}; widen --search or raise --timeout"
        )
    best = study.best_trial
    best_cfg = train_config(cfg, **best.params, output_dir=None, overwrite=False, resume=False)
    save_yaml(best_cfg, work / "best_config.yaml")
    return write_report(study, cfg, space, work, best)


def summarize(result: dict) -> str:
    """What `bertcls tune` prints."""
    best = result["best"]
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items()
    )
    out = Path(result["output_dir"])
    c = result["counts"]
    return "\n".join(
        [
            f"{c['complete']} trials finished, {c['pruned']} pruned, {c['fail']} failed in {result['minutes']:.1f} min",
            f"best: trial {best['number']}, validation {result['metric']} {best['value']:.4f} ({params})",
            f"train it: bertcls train --config {out / 'best_config.yaml'} --output-dir runs/<name>",
            f"all trials: {out / 'trials.csv'}; plots and summary in {out}",
        ]
    )
