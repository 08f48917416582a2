"""Does tuning pay? (issue 16) `bertcls tune` with a fixed budget against the default config, both then
trained over the same seeds and scored on test.

1. `bertcls tune --config CONFIG --search SPACE --timeout BUDGET` (pruner on) -> best_config.yaml
2. `bertcls train --config best_config.yaml --seeds S` and `bertcls train --config CONFIG --seeds S`
   (the default; its seeds are the budget's alternative use) -> test mean +- std of each, from
   seeds_summary.json

    python bench/tune_vs_default.py --config configs/train/trec6-minilm.yaml \
        --search configs/tune/spaces/minilm.yaml --budget 45m --seeds 0,1,2,3,4 --eval-steps 25

`--resume` reuses the steps already finished in --runs (their seconds are then None).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bertcls(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bertcls", *args], check=True)
    return round(time.perf_counter() - t0, 1)


def seeds_figures(run: Path) -> dict:
    s = json.loads((run / "seeds_summary.json").read_text())["summary"]["model/test"]
    return {k: [s[k]["mean"], s[k]["std"]] for k in ("accuracy", "f1_macro") if k in s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--search", required=True)
    p.add_argument("--budget", default="45m")
    p.add_argument("--trials", type=int, default=100, help="upper bound; the budget decides")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--eval-steps", default="25")
    p.add_argument("--workers", default="1")
    p.add_argument("--seed-workers", default="2", help="seed runs at once, each with cores / N threads")
    p.add_argument("--runs", default="runs/bench-tune")
    p.add_argument("--out", default=None)
    p.add_argument("--resume", action="store_true", help="reuse the tune and seed runs already in --runs")
    a = p.parse_args()
    runs = Path(a.runs)
    tune_dir, tuned, default = runs / "tune", runs / "tuned", runs / "default"

    def done(path: Path) -> bool:  # --resume: a step whose result exists is not run again (seconds: None)
        return a.resume and path.is_file()

    tune_s = None if done(tune_dir / "tune_summary.json") else bertcls(
        "tune", "--config", a.config, "--search", a.search, "--timeout", a.budget, "--trials", str(a.trials),
        "--eval-steps", a.eval_steps, "--workers", a.workers, "--output-dir", str(tune_dir), "--overwrite",
    )  # fmt: skip
    summary = json.loads((tune_dir / "tune_summary.json").read_text())
    tuned_s = None if done(tuned / "seeds_summary.json") else bertcls(
        "train", "--config", str(tune_dir / "best_config.yaml"), "--seeds", a.seeds,
        "--seed-workers", a.seed_workers, "--output-dir", str(tuned), "--overwrite", "--no-baseline")  # fmt: skip
    default_s = None if done(default / "seeds_summary.json") else bertcls(
        "train", "--config", a.config, "--seeds", a.seeds, "--seed-workers", a.seed_workers, "--output-dir", str(default),
        "--overwrite", "--no-baseline")  # fmt: skip
    result = {
        "command": " ".join(sys.argv),
        "tune": {
            "seconds": tune_s,
            "minutes": summary["minutes"],
            "best": summary["best"],
            "counts": summary["counts"],
            "importances": summary.get("importances"),
        },
        "tuned": {"seconds": tuned_s, "test": seeds_figures(tuned)},
        "default": {"seconds": default_s, "test": seeds_figures(default)},
    }
    out = Path(a.out or HERE / "results" / f"tune_vs_default_{Path(a.config).stem}.json")
    out.write_text(json.dumps(result, indent=2))
    for name in ("tuned", "default"):
        t = result[name]["test"]
        print(f"{name:<8} test accuracy {t['accuracy'][0]:.4f} +- {t['accuracy'][1]:.4f}, "
              f"macro-F1 {t['f1_macro'][0]:.4f} +- {t['f1_macro'][1]:.4f}")  # fmt: skip
    print(
        f"tune: {summary['counts']} in {summary['minutes']:.1f} min; best {summary['best']['params']}; wrote {out}"
    )


if __name__ == "__main__":
    main()
