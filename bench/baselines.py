"""BERT alone, the TF-IDF baseline alone, and their ensemble, on the same splits (issue 17).

Each seed is one `bertcls train --ensemble` in its own process: the run fits the model, the TF-IDF +
logistic regression baseline (C chosen on validation) and the ensemble weight (chosen on validation), and
scores all three once on test (the ensemble: `--ensemble-method`, stack by default); this script only collects `metrics.json`. The baseline is deterministic,
so its spread over seeds is 0 unless the validation split is carved from train by seed (TREC-6).

    python bench/baselines.py --task chnsenticorp --model runs/pretrain-zh-tiny-tapt --seeds 0,1,2,3,4
    python bench/baselines.py --task sst2 --seeds 0,1,2,3,4 --extra "--max-train-samples 8000"

Tasks (data from ../shared/data): chnsenticorp (configs/train/chnsenticorp-zh-tiny.yaml with --model),
sst2, trec6, sms_spam (MiniLM at bertcls's defaults). Prints a table (mean +- std over seeds) and writes
JSON to --out (default bench/results/baselines_<task>.json). Run dirs are removed after reading, except
their metrics.json, which is kept in the JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
KEYS = ("accuracy", "f1_macro")
ROWS = (("BERT", "model"), ("TF-IDF", "baseline"), ("ensemble", "ensemble"))


def task_args(task: str, model: str | None) -> list[str]:
    data = SHARED / task
    args = ["--train-file", str(data / "train.csv"), "--test-file", str(data / "test.csv")]
    if (data / "dev.csv").is_file():
        args += ["--validation-file", str(data / "dev.csv")]
    if task == "chnsenticorp":
        args = ["--config", str(HERE.parent / "configs/train/chnsenticorp-zh-tiny.yaml")] + args
    return args + (["--model", model] if model else [])


def run_seed(task: str, model: str | None, seed: int, runs: Path, extra: list[str]) -> dict:
    out = runs / f"{task}-s{seed}"
    cmd = [sys.executable, "-m", "bertcls", "train", *task_args(task, model), "--ensemble"]
    cmd += ["--seed", str(seed), "--output-dir", str(out), "--overwrite", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out)
    parts = {"model": m, "baseline": m["baseline"], "ensemble": m["ensemble"]}
    row = {"seed": seed, "wall_s": round(wall, 1), "train_s": m["train"]["runtime_s"]}
    row |= {
        "baseline_fit_s": m["baseline"]["fit_seconds"],
        "baseline_total_s": m["baseline"]["total_seconds"],
        "ensemble_method": m["ensemble"]["method"],
        "baseline_C": m["baseline"]["C"],
        "language_fit": m["train"]["language_fit"],
    }
    for _, key in ROWS:
        for split in ("validation", "test"):
            for k in KEYS:
                row[f"{key}_{split}_{k}"] = parts[key][split][k]
    return row


def mean_std(rows: list[dict], key: str) -> list[float]:
    v = np.array([r[key] for r in rows], dtype=float)
    return [float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=["chnsenticorp", "sst2", "trec6", "sms_spam"])
    p.add_argument("--model", default=None, help="base model (chnsenticorp: the pretrained Chinese BERT)")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--runs", default="runs/bench-baselines")
    p.add_argument("--extra", default="", help="more `bertcls train` flags")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    rows = []
    for s in [int(x) for x in a.seeds.split(",")]:
        rows.append(run_seed(a.task, a.model, s, Path(a.runs), a.extra.split()))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "language_fit"}), flush=True)
    summary = {k: mean_std(rows, k) for k in rows[0] if k.endswith(KEYS) or k in ("train_s", "wall_s")}
    cost = [r["baseline_total_s"] / r["wall_s"] for r in rows]
    result = {
        "task": a.task,
        "command": f"bertcls train {' '.join(task_args(a.task, a.model))} --ensemble --seed S {a.extra}",
        "runs": rows,
        "mean_std": summary,
        "baseline_share_of_wall_time": [float(np.mean(cost)), float(np.max(cost))],
    }
    out = Path(a.out or HERE / "results" / f"baselines_{a.task}.json")
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{a.task}, {len(rows)} seeds, test (validation) mean +- std")
    for name, key in ROWS:
        cells = []
        for k in KEYS:
            t, v = summary[f"{key}_test_{k}"], summary[f"{key}_validation_{k}"]
            cells.append(f"{k} {t[0]:.4f} +- {t[1]:.4f} ({v[0]:.4f})")
        print(f"{name:<9} " + "   ".join(cells))
    methods = sorted({r["ensemble_method"] for r in rows})
    print(f"ensemble: {', '.join(methods)}; baseline share of wall time {np.mean(cost):.1%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
