"""`bertcls predict --engine ray` against the single-process local engine on the same cores (issue 19):
the same int8 ONNX model and input rows, each side a fresh `bertcls predict` process, run alternately
(local, ray, local, ray, ...), wall time including model loads and, for Ray, starting it; then the
outputs compared row by row (labels equal, scores within 1e-5).

    python bench/predict_ray.py --model runs/sst2-minilm-1ep --data ../shared/data/sst2/train.csv \
        --rows 200000 --repeat 2

The input is the data file's texts repeated to --rows (a CSV with an id column). The model is exported
to ONNX int8 first (`bertcls export --quantize int8`) unless MODEL/onnx-int8 exists.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bertcls", *args], check=True)
    return round(time.perf_counter() - t0, 1)


def make_input(src: Path, rows: int, out: Path) -> None:
    with open(src, encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    with open(out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i in range(rows):
            w.writerow([i, texts[i % len(texts)]])


def read_rows(path: Path) -> list[dict]:
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    rows: list[dict] = []
    for f in files:  # Ray names its shards in input order
        with open(f, encoding="utf-8", newline="") as fh:
            rows += list(csv.DictReader(fh))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="a CSV with a text column")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument(
        "--workers", type=int, default=2, help="Ray actors, 1 thread each; local: this many threads"
    )
    p.add_argument("--chunk-size", type=int, default=4096)
    p.add_argument("--work", default="runs/bench-predict-ray")
    p.add_argument("--out", default=str(HERE / "results" / "predict_ray.json"))
    a = p.parse_args()
    work, model = Path(a.work), Path(a.model)
    work.mkdir(parents=True, exist_ok=True)
    onnx = model / "onnx-int8"
    if not onnx.is_dir():
        timed("export", str(model), "--quantize", "int8", "--output-dir", str(onnx))
    src = work / f"input-{a.rows}.csv"
    if not src.is_file():
        make_input(Path(a.data), a.rows, src)
    common = [str(model), "--file", str(src), "--backend", "onnx", "--onnx-dir", str(onnx)]
    common += ["--chunk-size", str(a.chunk_size)]
    runs = []
    for i in range(a.repeat):
        local_out, ray_out = work / f"local-{i}.csv", work / f"ray-{i}"
        for old in (local_out, ray_out):
            if old.exists():
                raise SystemExit(f"{old} exists from an earlier run: remove it or pass another --work")
        local_s = timed("predict", *common, "--threads", str(a.workers), "--output", str(local_out))
        ray_s = timed(
            "predict", *common, "--engine", "ray", "--num-workers", str(a.workers), "--threads", "1",
            "--output", str(ray_out),
        )  # fmt: skip
        runs.append(
            {"local_seconds": local_s, "ray_seconds": ray_s, "ray_over_local": round(ray_s / local_s, 3)}
        )
        print(
            f"pair {i + 1}: local {local_s} s, ray {ray_s} s (ray / local {ray_s / local_s:.3f})", flush=True
        )
    want, got = read_rows(work / "local-0.csv"), read_rows(work / "ray-0")
    same_order = [w["id"] for w in want] == [g["id"] for g in got]
    same_labels = [w["label"] for w in want] == [g["label"] for g in got]
    max_diff = max(abs(float(w["score"]) - float(g["score"])) for w, g in zip(want, got))
    result = {
        "command": " ".join(sys.argv),
        "rows": a.rows,
        "workers": a.workers,
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "rows_per_second": {
            "local": [round(a.rows / r["local_seconds"], 1) for r in runs],
            "ray": [round(a.rows / r["ray_seconds"], 1) for r in runs],
        },
        "identical": {"rows": len(want) == len(got), "order": same_order, "labels": same_labels},
        "max_score_difference": max_diff,
    }
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(
        f"output row for row: order {same_order}, labels {same_labels}, max score difference {max_diff:.2g}"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
