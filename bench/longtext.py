"""Long-text strategies side by side (issue 14): accuracy over seeds, and inference cost against truncation.

Each cell is `bertcls train --long-text S --max-length L --seed K --ensemble` on the same data and model
(its own process): the model alone, and the model stacked with the TF-IDF baseline (`--no-ensemble`:
train with `--no-baseline`, the model alone). Chunks models are also scored with max pooling. Then one
trained model per strategy is timed at inference on the test texts with every strategy (`TextClassifier`, torch backend,
same process, same threads), and texts/s are reported relative to truncation.

    python bench/longtext.py --data ../shared/data/chnsenticorp --model runs/pretrain-zh-tiny-tapt \
        --config configs/train/chnsenticorp-zh-tiny.yaml --max-length 128 --seeds 0,1,2 --parallel 2

`--parallel N` runs N trainings at once with `--threads 1` each (small models do not use two cores well;
the accuracy of a run does not depend on it). Writes JSON to --out and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STRATEGIES = ("truncate", "head-tail", "chunks")


def train(a, strategy: str, seed: int) -> dict:
    out = Path(a.runs) / f"{Path(a.data).name}-L{a.max_length}-{strategy}-s{seed}"
    data = Path(a.data)
    cmd = [sys.executable, "-m", "bertcls", "train"] + (["--config", a.config] if a.config else [])
    cmd += [
        "--model",
        a.model,
        "--train-file",
        str(data / "train.csv"),
        "--test-file",
        str(data / "test.csv"),
    ]
    if (data / "dev.csv").is_file():
        cmd += ["--validation-file", str(data / "dev.csv")]
    cmd += ["--long-text", strategy, "--max-length", str(a.max_length), "--seed", str(seed)]
    cmd += ["--ensemble"] if a.ensemble else ["--no-baseline"]
    cmd += ["--output-dir", str(out), "--overwrite", *a.extra.split()]
    if a.parallel > 1:
        cmd += ["--threads", "1"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = json.loads((out / "metrics.json").read_text())
    row = {"strategy": strategy, "seed": seed, "wall_s": round(time.perf_counter() - t0, 1), "dir": str(out)}
    for split in ("validation", "test"):
        row |= {f"{split}_{k}": m[split][k] for k in ("accuracy", "f1_macro")}
    if a.ensemble:  # the same model stacked with the TF-IDF baseline (fitted on validation), and the baseline
        row |= {f"ensemble_test_{k}": m["ensemble"]["test"][k] for k in ("accuracy", "f1_macro")}
        row |= {f"baseline_test_{k}": m["baseline"]["test"][k] for k in ("accuracy", "f1_macro")}
    if strategy == "chunks":  # the same model, its windows pooled by max instead of mean
        for split, name in (("validation", "dev.csv"), ("test", "test.csv")):
            if (data / name).is_file():
                e = evaluate(a, out, data / name, pooling="max")
                row |= {f"{split}_{k}_max": e[k] for k in ("accuracy", "f1_macro")}
    print(json.dumps(row), flush=True)
    return row


def evaluate(a, model_dir: Path, file: Path, pooling: str) -> dict:
    report = model_dir / f"eval-{pooling}-{file.stem}"
    cmd = [sys.executable, "-m", "bertcls", "evaluate", str(model_dir), "--file", str(file)]
    cmd += ["--pooling", pooling, "--no-ensemble", "--output-dir", str(report)]
    if a.parallel > 1:
        cmd += ["--threads", "1"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((report / "metrics.json").read_text())


def texts_per_s(
    model_dir: str, texts: list[str], strategy: str, repeats: int = 2, max_length: int | None = None
) -> dict:
    from bertcls import TextClassifier
    from bertcls.core.longtext import LongText

    clf = TextClassifier.from_pretrained(model_dir, device="cpu", ensemble=False)
    clf.max_length = max_length or clf.max_length  # speed depends on the windows, not on the weights
    clf.long_text = LongText(strategy).check(clf.max_length)
    rows = len(clf.encode(texts))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf.predict_proba(texts)
        best = min(best, time.perf_counter() - t0)
    return {"texts_per_s": round(len(texts) / best, 1), "windows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--config", default=None)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--runs", default="runs/bench-longtext")
    p.add_argument("--extra", default="")
    p.add_argument(
        "--no-ensemble",
        dest="ensemble",
        action="store_false",
        help="train with --no-baseline (default: --ensemble, which also reports BERT + TF-IDF)",
    )
    p.add_argument("--out", default=None)
    p.add_argument("--keep-first", action="store_true", help="keep the first seed's models (for --time-only)")
    p.add_argument(
        "--time-only",
        action="store_true",
        help="no training: time the models kept by an earlier --keep-first run again (on a quiet machine), "
        "two rounds alternating the strategies, and update the JSON's 'inference'",
    )
    p.add_argument(
        "--kept-from",
        default=None,
        help="--time-only with the models kept by another run (a JSON), read at --max-length: inference "
        "speed depends on the architecture and the windows, not on the weights",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="no training: join these JSONs of one cell (other seeds) into --out, mean +- std over all",
    )
    a = p.parse_args()
    out = Path(a.out or HERE / "results" / f"longtext_{Path(a.data).name}_L{a.max_length}.json")
    if a.merge:
        return merge(a.merge, out)
    if a.time_only:
        return retime(a, out)
    strategies = a.strategies.split(",")
    jobs = [(s, int(k)) for k in a.seeds.split(",") for s in strategies]
    with ThreadPoolExecutor(a.parallel) as pool:
        rows = list(pool.map(lambda j: train(a, *j), jobs))
    import csv

    with open(Path(a.data) / "test.csv", encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    cost = {}
    first = {r["strategy"]: r["dir"] for r in rows if r["seed"] == int(a.seeds.split(",")[0])}
    for s in strategies:  # each strategy's own model, timed with its own strategy
        cost[s] = texts_per_s(first[s], texts, s)
    summary = mean_std(rows, strategies)
    kept = {}
    for r in rows:
        where = r.pop("dir")
        if a.keep_first and first.get(r["strategy"]) == where:
            kept[r["strategy"]] = str(Path(where).resolve())
        else:
            shutil.rmtree(where, ignore_errors=True)
    base = cost.get("truncate", {}).get("texts_per_s")
    result = {
        "data": a.data,
        "model": a.model,
        "max_length": a.max_length,
        "command": " ".join(sys.argv),
        "runs": rows,
        "mean_std": summary,
        "inference": cost,
        "kept": kept,
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{Path(a.data).name}, max length {a.max_length}, {len(a.seeds.split(','))} seeds")
    for s in strategies:
        t, v = summary[f"{s}:test_accuracy"], summary[f"{s}:validation_accuracy"]
        speed = cost[s]["texts_per_s"]
        rel = f" ({speed / base:.2f}x truncate)" if base else ""
        print(f"{s:<10} test accuracy {t[0]:.4f} +- {t[1]:.4f} (validation {v[0]:.4f}); {speed} texts/s{rel}")
        if f"{s}:ensemble_test_accuracy" in summary:
            t = summary[f"{s}:ensemble_test_accuracy"]
            print(f"{'  + TF-IDF':<10} test accuracy {t[0]:.4f} +- {t[1]:.4f} (stacked ensemble)")
        if f"{s}:test_accuracy_max" in summary:
            t, v = summary[f"{s}:test_accuracy_max"], summary[f"{s}:validation_accuracy_max"]
            print(f"{'  max pool':<10} test accuracy {t[0]:.4f} +- {t[1]:.4f} (validation {v[0]:.4f})")
    print(f"wrote {out}")


def mean_std(rows: list[dict], strategies: list[str]) -> dict:
    """Per strategy and score: [mean, sample std] over the seeds' rows."""
    summary = {}
    for s in strategies:
        mine = [r for r in rows if r["strategy"] == s]
        for key in ("test_accuracy", "test_f1_macro", "validation_accuracy", "ensemble_test_accuracy"):
            for suffix in ("", "_max"):
                if mine and all(key + suffix in r for r in mine):
                    v = np.array([r[key + suffix] for r in mine])
                    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
                    summary[f"{s}:{key}{suffix}"] = [float(v.mean()), sd]
    return summary


def merge(paths: list[str], out: Path) -> None:
    """Join the seeds of several runs of one cell (same data, model, max length) into one JSON; the
    first file's inference timings and kept models are kept. A seed given twice is an error."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    first = parts[0]
    for p, part in zip(paths, parts):
        for key in ("data", "model", "max_length"):
            if part[key] != first[key]:
                raise SystemExit(f"{p}: {key} {part[key]!r} differs from {paths[0]}'s {first[key]!r}")
    rows = [r for part in parts for r in part["runs"]]
    seen = [(r["strategy"], r["seed"]) for r in rows]
    if len(seen) != len(set(seen)):
        raise SystemExit(f"a (strategy, seed) occurs twice in {paths}")
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    merged = first | {"runs": rows, "mean_std": mean_std(rows, strategies)}
    merged["commands"] = [part["command"] for part in parts]
    out.write_text(json.dumps(merged, indent=2))
    seeds = sorted({r["seed"] for r in rows})
    print(f"merged {len(rows)} runs (seeds {seeds}) into {out}")
    for key, (m, sd) in merged["mean_std"].items():
        print(f"  {key:<40} {m:.4f} +- {sd:.4f}")


def retime(a, out: Path) -> None:
    import csv

    result = json.loads(out.read_text())
    with open(Path(a.data) / "test.csv", encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    kept = json.loads(Path(a.kept_from).read_text())["kept"] if a.kept_from else result["kept"]
    order = list(kept)
    best: dict[str, dict] = {}
    for round_ in (order, order[::-1]):  # alternately, twice: drift on the machine hits every strategy
        for s in round_:
            t = texts_per_s(kept[s], texts, s, max_length=a.max_length)
            if s not in best or t["texts_per_s"] > best[s]["texts_per_s"]:
                best[s] = t
    result["inference"] = best
    result["inference_command"] = " ".join(sys.argv)
    result["inference_models"] = kept
    out.write_text(json.dumps(result, indent=2))
    base = best.get("truncate", {}).get("texts_per_s")
    for s, t in best.items():
        rel = f" ({t['texts_per_s'] / base:.2f}x truncate)" if base else ""
        print(f"{s:<10} {t['texts_per_s']} texts/s, {t['windows']} windows{rel}")
    print(f"updated {out}")


if __name__ == "__main__":
    main()
