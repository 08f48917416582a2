"""Few-shot (issue 15): `bertcls train --method setfit` against standard `bertcls train` fine-tuning and the
TF-IDF + logistic regression baseline, on the same stratified subsets of N training texts per class.

Each seed draws its own subset (and the fine-tuning run's seed). Validation: the data's dev.csv, else a
fixed seeded 10% of train kept out of every subset; the same for all methods (fine-tuning selects its
best epoch on it; SetFit does not use it). TF-IDF is the baseline every fine-tuning run fits on the same
subset (metrics.json "baseline"). Test: test.csv, whole.

    python bench/fewshot.py --data ../shared/data/sst2 --sizes 8,16,32,64 --seeds 0,1,2,3,4

`--methods selftrain` runs `bertcls self-train` with each cell's SetFit run (which must exist, from an earlier
`--methods setfit`) as the first teacher and the training texts outside the subset, labels dropped, as the
unlabelled texts; it records the teacher's test accuracy beside the student's.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FINETUNE = "--epochs 20 --batch-size 16"  # 16-128 texts: 3 epochs would be a handful of steps
SELF_TRAIN = "--epochs 3"  # thousands of pseudo-labelled texts: train's defaults


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def subset(rows: list[dict], per_class: int, seed: int, label: str = "label") -> list[dict]:
    rng = np.random.default_rng(seed)
    by = {}
    for i, r in enumerate(rows):
        by.setdefault(r[label], []).append(i)
    picked = [
        i for lab in sorted(by) for i in rng.choice(by[lab], min(per_class, len(by[lab])), replace=False)
    ]
    return [rows[i] for i in sorted(picked)]


def train(args: list[str], out: Path, verb: str = "train") -> tuple[dict, float]:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "bertcls", verb, *args, "--output-dir", str(out), "--overwrite"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text()), round(time.perf_counter() - t0, 1)


def self_train_args(seed_dir: Path, train_rows: list[dict], sub: Path, a) -> list[str]:
    """`bertcls self-train` from this subset's SetFit run (made first, by --methods setfit) over the training
    texts outside the subset, their labels dropped."""
    teacher = seed_dir / "setfit"
    if not (teacher / "metrics.json").is_file():
        sys.exit(f"{teacher}: no SetFit run to teach self-training; run --methods setfit for this cell first")
    taken = {r["text"] for r in read(sub)}
    unlabeled = write(
        seed_dir / "unlabeled.csv", [{"text": r["text"]} for r in train_rows if r["text"] not in taken]
    )
    return ["--teacher", str(teacher), "--unlabeled-file", str(unlabeled), *a.selftrain_extra.split()]


def teacher_accuracy(seed_dir: Path) -> float:
    return json.loads((seed_dir / "setfit" / "metrics.json").read_text())["test"]["accuracy"]


def mean_std(v: list[float]) -> list[float]:
    return [float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--sizes", default="8,16,32,64")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--methods", default="setfit,finetune")
    p.add_argument("--setfit-extra", default="")
    p.add_argument("--finetune-extra", default=FINETUNE)
    p.add_argument("--selftrain-extra", default=SELF_TRAIN)
    p.add_argument("--max-length", default="64")
    p.add_argument("--runs", default="runs/bench-fewshot")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    data = Path(a.data)
    runs = Path(a.runs) / data.name
    train_rows = read(data / "train.csv")
    if (data / "dev.csv").is_file():
        dev = data / "dev.csv"
    else:  # a fixed held-out tenth of train, never in a subset
        rng = np.random.default_rng(12345)
        order = rng.permutation(len(train_rows))
        held = set(order[: len(train_rows) // 10].tolist())
        dev = write(runs / "dev.csv", [r for i, r in enumerate(train_rows) if i in held])
        train_rows = [r for i, r in enumerate(train_rows) if i not in held]
    out_file = Path(a.out or HERE / "results" / f"fewshot_{data.name}.json")
    result = json.loads(out_file.read_text()) if out_file.is_file() else {}
    result |= {"command": " ".join(sys.argv), "model": a.model, "validation": str(dev)}
    cells = result.setdefault("cells", {})
    for n in map(int, a.sizes.split(",")):
        for seed in a.seeds.split(","):
            sub = write(runs / f"n{n}-s{seed}" / "train.csv", subset(train_rows, n, int(seed)))
            common = ["--model", a.model, "--train-file", str(sub), "--validation-file", str(dev),
                      "--test-file", str(data / "test.csv"), "--seed", seed, "--max-length", a.max_length]  # fmt: skip
            for method in a.methods.split(","):
                key = f"{method}/{n}"
                cell = cells.setdefault(key, {"per_seed": {}, "seconds": {}})
                cell.setdefault("validation", {})  # dev accuracy: what a setting is chosen on, not test
                if seed in cell["per_seed"]:
                    continue  # already measured (the result file is resumable)
                verb, extra = "train", a.finetune_extra.split()
                if method == "setfit":
                    extra = ["--method", "setfit", *a.setfit_extra.split()]
                elif method == "selftrain":  # the seed's SetFit run teaches; the rest of train unlabelled
                    verb, extra = "self-train", self_train_args(runs / f"n{n}-s{seed}", train_rows, sub, a)
                    cell.setdefault("teacher", {})[seed] = teacher_accuracy(runs / f"n{n}-s{seed}")
                m, secs = train([*common, *extra], runs / f"n{n}-s{seed}" / method, verb)
                cell["per_seed"][seed], cell["seconds"][seed] = m["test"]["accuracy"], secs
                cell["validation"][seed] = m["validation"]["accuracy"]
                # self-train: which round became the model, and the teacher's score on the same dev rows
                if method == "selftrain":
                    meta = json.loads((runs / f"n{n}-s{seed}" / method / "bertcls.json").read_text())
                    st = meta["self_training"]
                    cell.setdefault("best_round", {})[seed] = st.get("best_round", len(st["rounds"]))
                    cell.setdefault("teacher_validation", {})[seed] = st.get("teacher_validation")
                # self-train's baseline is fitted on its chosen round's rows, pseudo-labels included
                if "baseline" in m:
                    name = "tfidf_selftrain" if method == "selftrain" else "tfidf"
                    tf = cells.setdefault(f"{name}/{n}", {"per_seed": {}, "seconds": {}})
                    tf["per_seed"][seed] = m["baseline"]["test"]["accuracy"]
                print(
                    f"{key} seed {seed}: test accuracy {m['test']['accuracy']:.4f}, validation"
                    f" {m['validation']['accuracy']:.4f} in {secs} s",
                    flush=True,
                )
                for c in cells.values():
                    c["test_accuracy"] = mean_std(list(c["per_seed"].values()))
                    if c.get("validation"):
                        c["validation_accuracy"] = mean_std(list(c["validation"].values()))
                out_file.write_text(json.dumps(result, indent=2))
    print(f"{'method/size':<14} {'test accuracy':>16} {'validation':>16}  seeds")
    for key, c in sorted(cells.items(), key=lambda kv: (int(kv[0].split("/")[1]), kv[0])):
        m, sd = c["test_accuracy"]
        v = "{:.4f} +- {:.4f}".format(*c["validation_accuracy"]) if "validation_accuracy" in c else "-"
        print(f"{key:<14} {m:.4f} +- {sd:.4f} {v:>16}  {len(c['per_seed'])}")
    print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
