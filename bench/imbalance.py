"""Imbalanced data and calibration (issue 16): the same model and data trained with each imbalance option,
over seeds, with `bertcls train --seeds` doing the repeats and the statistics.

Variants (each one `bertcls train ... --seeds S` in its own process; `--extra` adds flags to all):
  none        plain cross-entropy, argmax
  balanced    --class-weights balanced
  focal       --loss focal --focal-gamma 2
  threshold   --tune-threshold (positive class's threshold tuned on validation)
  calibrated  --calibrate temperature (ECE before/after; decisions unchanged)

Reports, per variant, test positive-class F1, PR-AUC, macro-F1, accuracy and ECE as mean +- std over the
seeds, from each run's seeds_summary.json (and the per-seed positive-class F1 from its metrics.json).

    python bench/imbalance.py --data ../shared/data/sms_spam --extra "--epochs 1" --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "none": [],
    "balanced": ["--class-weights", "balanced"],
    "focal": ["--loss", "focal", "--focal-gamma", "2"],
    "threshold": ["--tune-threshold"],
    "calibrated": ["--calibrate", "temperature"],
}


def train(a, name: str) -> dict:
    data, out = Path(a.data), Path(a.runs) / f"{Path(a.data).name}-{name}"
    cmd = [sys.executable, "-m", "bertcls", "train", "--model", a.model, "--no-baseline"]
    cmd += ["--train-file", str(data / "train.csv"), "--test-file", str(data / "test.csv")]
    if (data / "dev.csv").is_file():
        cmd += ["--validation-file", str(data / "dev.csv")]
    cmd += ["--seeds", a.seeds, "--seed-workers", str(a.workers), "--output-dir", str(out), "--overwrite"]
    cmd += VARIANTS[name] + a.extra.split()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary = json.loads((out / "seeds_summary.json").read_text())
    test = summary["summary"]["model/test"]
    row = {"variant": name, "flags": " ".join(VARIANTS[name]), "wall_s": round(time.perf_counter() - t0, 1)}
    for key in ("accuracy", "f1_macro", "pr_auc", "ece"):
        if key in test:
            row[key] = [test[key]["mean"], test[key]["std"]]
    positive_f1 = []
    for rel in summary["runs"].values():
        m = json.loads((out / rel / "metrics.json").read_text())["test"]
        positive_f1.append(m["per_class"][m["positive_label"]]["f1-score"])
        row["positive_label"] = m["positive_label"]
    row["positive_f1"] = [
        float(np.mean(positive_f1)),
        float(np.std(positive_f1, ddof=1)) if len(positive_f1) > 1 else 0.0,
    ]
    if name == "calibrated":
        ece = [
            json.loads((out / rel / "metrics.json").read_text())["calibration"]["test"]
            for rel in summary["runs"].values()
        ]
        row["ece_before"] = float(np.mean([e["before"]["ece"] for e in ece]))
        row["ece_after"] = float(np.mean([e["after"]["ece"] for e in ece]))
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/sms_spam")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--workers", type=int, default=1, help="--seed-workers for each variant")
    p.add_argument("--runs", default="runs/bench-imbalance")
    p.add_argument("--extra", default="")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    rows = [train(a, v) for v in a.variants.split(",")]
    out = Path(a.out or HERE / "results" / f"imbalance_{Path(a.data).name}.json")
    out.write_text(
        json.dumps({"command": " ".join(sys.argv), "data": a.data, "model": a.model, "rows": rows}, indent=2)
    )
    print(f"\n{Path(a.data).name}, {a.model}, seeds {a.seeds} (test, mean +- std)")
    print(f"{'variant':<11} {'pos. F1':>15} {'PR-AUC':>15} {'macro-F1':>15} {'ECE':>15}")
    for r in rows:
        cells = [r.get(k) for k in ("positive_f1", "pr_auc", "f1_macro", "ece")]
        print(
            f"{r['variant']:<11} "
            + " ".join(f"{c[0]:.4f} +- {c[1]:.4f}" if c else f"{'':>15}" for c in cells)
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
