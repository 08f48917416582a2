"""``bertcls train --seeds 0,1,2,3,4``: one fine-tuning run per seed, reported as mean, std and a 95%
interval, because single runs of small BERTs differ by a point or more between seeds.

Reads top to bottom: setup (check the output directory, stage beside it), loop (each seed is a normal
`train` run in ``seeds/seed-K``, in parallel processes with ``--seed-workers``), save (the best run by
validation ``--metric`` becomes the model at the top of the directory, the others stay in ``seeds/``;
``seeds_summary.json`` and a table in the model card). The directory replaces ``--output-dir`` only once
every seed has finished.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bertcls.core import metrics
from bertcls.core.config import save_yaml
from bertcls.core.io import atomic_write_text, staged_dir
from bertcls.core.rundir import check_output_dir

log = logging.getLogger("bertcls")

SUMMARY_FILE = "seeds_summary.json"
SPLITS = ("validation", "test")


# ---------------------------------------------------------------------------------------------------- run
def run(cfg, train_one) -> dict:
    """``train_one``: `bertcls train`'s run(cfg) for one seed (passed in: train.train imports this module)."""
    from bertcls.core.runtime import worker_threads

    final = result_dir(cfg)
    workers = min(cfg.seed_workers, len(cfg.seeds))
    with staged_dir(final) as tmp:
        save_yaml(cfg, tmp / "seeds_config.yaml")
        per_run = worker_threads(cfg.threads, workers)
        jobs = [one_seed(cfg, k, tmp / "seeds" / f"seed-{k}", per_run) for k in cfg.seeds]
        log.info("training %d seeds (%d at a time) into %s", len(jobs), workers, final)
        if workers > 1:
            import multiprocessing

            # spawn: a fresh interpreter per worker (torch and fork do not mix)
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(_train, [train_one] * len(jobs), jobs))
        else:
            for job in jobs:
                _train(train_one, job)
        runs = {k: json.loads((tmp / "seeds" / f"seed-{k}" / "metrics.json").read_text()) for k in cfg.seeds}
        best = best_seed(runs, cfg.metric)
        summary = summarize_seeds(runs, cfg.metric, best)
        promote(tmp / "seeds" / f"seed-{best}", tmp, final)
        for where in (tmp / "seeds").iterdir():  # the paths the other runs will have once swapped in
            relocate(where, tmp, final)
        atomic_write_text(tmp / SUMMARY_FILE, json.dumps(summary, indent=2))
        card = tmp / "README.md"
        atomic_write_text(card, card.read_text(encoding="utf-8") + seeds_section(summary))
    summary["output_dir"] = str(final)
    return summary


def result_dir(cfg) -> Path:
    """Where a run of runs (seeds, folds) ends up, checked before any work: it may replace only an
    earlier result of `bertcls train`, never the model or the data."""
    from bertcls.core.runtime import setup_logging
    from bertcls.train.prepare import default_output_dir

    setup_logging(None)
    final = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg)
    inputs = [("--model", cfg.model), ("--train-file", cfg.train_file), ("--test-file", cfg.test_file)]
    check_output_dir(final, "train", overwrite=cfg.overwrite, inputs=inputs)
    return final


def one_seed(cfg, seed: int, out: Path, threads: int | None):
    """The config of one seed's run: the same options with this seed, into its own directory."""
    name = f"{cfg.name or Path(cfg.output_dir or 'run').name} (seed {seed})"
    return dataclasses.replace(
        cfg, seed=seed, seeds=None, output_dir=str(out), overwrite=False, threads=threads, name=name
    )


def _train(train_one, cfg) -> None:
    from bertcls.core.runtime import setup_logging

    train_one(cfg)
    setup_logging(None)  # stop writing into that run's train.log


def promote(best: Path, top: Path, final: Path) -> None:
    """The best run (of seeds, of self-training rounds) becomes the top of the staged directory ``top``,
    which will be swapped in as ``final``: its files move, and its card and run_config.yaml name ``final``
    (not the subdirectory it was trained in, which is gone)."""
    for item in best.iterdir():
        os.replace(item, top / item.name)
    best.rmdir()
    relocate(top, best, final)


def relocate(run_dir: Path, staged: Path, final: Path) -> None:
    """The model card's and run_config.yaml's paths, from where ``run_dir`` was trained (``staged``) to
    where it ends up."""
    for name in ("README.md", "run_config.yaml"):
        f = run_dir / name
        if f.is_file():
            text = f.read_text(encoding="utf-8").replace(str(staged), str(final))
            atomic_write_text(f, text)


# ---------------------------------------------------------------------------------------------------- summary
def best_seed(runs: dict[int, dict], metric: str) -> int:
    """The seed whose model scores best on validation (ties: the first seed given)."""
    best = None
    for seed, m in runs.items():
        value = m["validation"].get(metric)
        if value is not None and (best is None or metrics.is_better(metric, value, best[1])):
            best = (seed, value)
    return best[0] if best else next(iter(runs))


def interval(values: list[float]) -> dict:
    """Mean, sample std and the 95% t-interval of the mean (n = 1: no spread)."""
    v = np.asarray(values, dtype=np.float64)
    n, mean = len(v), float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    out = {"mean": mean, "std": std, "n": n, "values": [float(x) for x in v]}
    if n > 1:
        from scipy.stats import t

        half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        out["ci95"] = [mean - half, mean + half]
    return out


def scalars(m: dict) -> dict[str, float]:
    """The scores of a metrics dict, without the row count."""
    from bertcls.core.scoring import scalar

    return {k: v for k, v in scalar(m).items() if k != "n"}


def summarize_seeds(runs: dict[int, dict], metric: str, best: int) -> dict:
    """Per split (and for the baseline and the ensemble where the runs have them), every scalar metric as
    mean, std and 95% interval over the seeds."""
    seeds = list(runs)
    out: dict = {"seeds": seeds, "best_seed": best, "metric": metric, "summary": {}}
    sources = {"model": lambda m: m, "baseline": lambda m: m.get("baseline") or {}}
    sources["ensemble"] = lambda m: m.get("ensemble") or {}
    for who, get in sources.items():
        for split in SPLITS:
            per_seed = [scalars(get(runs[k]).get(split) or {}) for k in seeds]
            keys = [k for k in per_seed[0] if all(k in p for p in per_seed)]
            if keys:
                out["summary"][f"{who}/{split}"] = {k: interval([p[k] for p in per_seed]) for k in keys}
    out["runs"] = {str(k): f"seeds/seed-{k}" if k != best else "." for k in seeds}
    return out


def table_rows(summary: dict) -> list[tuple[str, str, dict]]:
    """The rows the card and the printout show: the model's headline metrics, and the ensemble's when
    trained with one (the baseline is deterministic: the same every seed; it is in the JSON)."""
    keys = list(dict.fromkeys([summary["metric"], "accuracy", "f1_macro", "pr_auc", "ece"]))
    rows = []
    for where, block in summary["summary"].items():
        who, split = where.split("/")
        if who == "baseline":
            continue
        for key in keys if who == "model" else keys[:3]:
            if key in block and key != "loss":
                rows.append((f"{split} {key}" + ("" if who == "model" else f" ({who})"), key, block[key]))
    return rows


def seeds_section(summary: dict) -> str:
    """The model card's table over seeds."""
    lines = [
        "",
        f"## Over {len(summary['seeds'])} seeds",
        "",
        f"This model is seed {summary['best_seed']}, the best by validation {summary['metric']}; the other "
        "runs are in `seeds/`. Mean +- sample std, 95% t-interval of the mean, and each seed's value "
        f"(seeds {', '.join(map(str, summary['seeds']))}); all figures in `{SUMMARY_FILE}`.",
        "",
        "| metric | mean +- std | 95% interval | per seed |",
        "|---|---|---|---|",
    ]
    for name, _, s in table_rows(summary):
        ci = s.get("ci95")
        ci_text = f"{ci[0]:.4f} .. {ci[1]:.4f}" if ci else ""
        lines.append(
            f"| {name} | {s['mean']:.4f} +- {s['std']:.4f} | {ci_text} | {' '.join(f'{v:.4f}' for v in s['values'])} |"
        )
    return "\n".join(lines) + "\n"


def summary_text(summary: dict) -> str:
    """What `bertcls train --seeds` prints."""
    lines = [f"{len(summary['seeds'])} seeds: mean +- std (95% interval)"]
    for name, _, s in table_rows(summary):
        ci = s.get("ci95")
        ci_text = f" ({ci[0]:.4f} .. {ci[1]:.4f})" if ci else ""
        lines.append(f"  {name:<28} {s['mean']:.4f} +- {s['std']:.4f}{ci_text}")
    out = summary.get("output_dir", "")
    lines.append(
        f"model = seed {summary['best_seed']} (best validation {summary['metric']}), saved to {out}; "
        f"other seeds in {Path(out) / 'seeds'}; all figures: {Path(out) / SUMMARY_FILE}"
    )
    return "\n".join(lines)
