"""The README's Chinese pretraining tables, from `bertcls train --seeds` (issue 16) instead of hand-run
seed loops: each (model, learning rate) cell is one `bertcls train --config CONFIG --model M
--learning-rate LR --seeds S` whose seeds_summary.json gives the per-seed values, mean, std and 95%
interval of validation and test accuracy.

    python bench/zh_pretraining_seeds.py \
        --models random=runs/zh-tiny-random-init,recipe=runs/pretrain-zh-tiny-tapt \
        --lrs 3e-4,1e-4,1e-3 --seeds 0,1,2,3,4 --seed-workers 2

The models: `bertcls pretrain --config configs/pretrain/zh-tiny-random-init.yaml` (random init) and the
two-phase recipe (configs/pretrain/zh-tiny-seq32.yaml then zh-tiny-tapt.yaml).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cell(a, name: str, model: str, lr: str) -> dict:
    data, out = Path(a.data), Path(a.runs) / f"{name}-lr{lr}"
    cmd = [sys.executable, "-m", "bertcls", "train", "--config", a.config, "--model", model]
    cmd += ["--train-file", str(data / "train.csv"), "--validation-file", str(data / "dev.csv")]
    cmd += ["--test-file", str(data / "test.csv"), "--learning-rate", lr, "--no-baseline"]
    cmd += [
        "--seeds",
        a.seeds,
        "--seed-workers",
        str(a.seed_workers),
        "--output-dir",
        str(out),
        "--overwrite",
    ]
    cmd += a.extra.split()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = round(time.perf_counter() - t0, 1)
    s = json.loads((out / "seeds_summary.json").read_text())["summary"]
    row = {"model": name, "path": model, "learning_rate": float(lr), "wall_s": wall}
    for split in ("validation", "test"):
        acc = s[f"model/{split}"]["accuracy"]
        row[split] = {k: acc[k] for k in ("mean", "std", "ci95", "values")}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", required=True, help="name=model_dir,...")
    p.add_argument("--lrs", default="3e-4")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--seed-workers", type=int, default=1)
    p.add_argument("--config", default="configs/train/chnsenticorp-zh-tiny.yaml")
    p.add_argument("--data", default="../shared/data/chnsenticorp")
    p.add_argument("--extra", default="", help="more `bertcls train` flags for every cell")
    p.add_argument("--runs", default="runs/bench-zh-seeds")
    p.add_argument("--out", default=str(HERE / "results" / "zh_pretraining_seeds.json"))
    a = p.parse_args()
    models = dict(m.split("=", 1) for m in a.models.split(","))
    rows = [cell(a, name, path, lr) for lr in a.lrs.split(",") for name, path in models.items()]
    Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2))
    print("\n| model | lr | test accuracy per seed | test mean +- std | validation mean +- std |")
    print("|---|---|---|---|---|")
    for r in rows:
        t, v = r["test"], r["validation"]
        print(
            f"| {r['model']} | {r['learning_rate']:g} | {' / '.join(f'{x:.4f}' for x in t['values'])} | "
            f"{t['mean']:.4f} +- {t['std']:.4f} | {v['mean']:.4f} +- {v['std']:.4f} |"
        )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
