"""Compression targets (issue 12), on one dataset and one fine-tuned teacher, each step its own process:

1. distil a 3-layer student (`bertcls distill --student-layers 0,2,4`) over seeds, and the same student
   architecture and initialisation trained on the labels alone (`--alpha 0`: same data, same epochs);
   with `--layer-match "--hidden-weight 10 --attention-weight 1"` also the student distilled with
   TinyBERT's intermediate-layer loss (variant `layer_matched`);
2. prune the teacher's feed-forward neurons (`bertcls prune --target-sparsity S`) with recovery;
3. `bertcls compress report TEACHER STUDENT PRUNED --max-drop 1.0` (PyTorch fp32, ONNX fp32, ONNX int8);
4. `transformers.pipeline` on the teacher (batch 32, 2 threads, tokenisation included) for the
   int8-student-versus-pipeline ratio.

    python bench/compress.py --teacher runs/sst2-minilm-1ep --data ../shared/data/sst2 --seeds 0,1,2 \
        --extra "--epochs 1" --distill-extra "--augment eda:4"
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


def bertcls(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bertcls", *args], check=True)
    return round(time.perf_counter() - t0, 1)


def data_args(data: Path) -> list[str]:
    args = ["--train-file", str(data / "train.csv"), "--test-file", str(data / "test.csv")]
    return args + (["--validation-file", str(data / "dev.csv")] if (data / "dev.csv").is_file() else [])


def test_accuracy(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["test"]["accuracy"]


def pipeline_texts_per_s(model: str, texts: list[str], threads: int = 2, batch: int = 32) -> float:
    import torch
    from transformers import pipeline

    torch.set_num_threads(threads)
    clf = pipeline("text-classification", model=model, device="cpu", batch_size=batch, truncation=True)
    clf(texts[:64])  # warm-up
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        clf(texts)
        best = min(best, time.perf_counter() - t0)
    return round(len(texts) / best, 1)


def mean_std(v: list[float]) -> list[float]:
    return [float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--layers", default="0,2,4")
    p.add_argument("--sparsity", default="0.65")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--extra", default="", help="flags for distill and prune (e.g. --epochs 1)")
    p.add_argument("--distill-extra", default="", help="flags for distill alone (e.g. --augment eda:4)")
    p.add_argument(
        "--layer-match", default="", help="flags for a third, layer-matched variant (e.g. --hidden-weight 10)"
    )
    p.add_argument("--runs", default="runs/bench-compress")
    p.add_argument("--reuse", action="store_true", help="keep runs whose metrics.json exists (resume)")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    data, runs, extra = Path(a.data), Path(a.runs) / Path(a.data).name, a.extra.split()

    def reused(run: Path) -> bool:  # --reuse: an earlier run of this command already measured it
        return a.reuse and (run / "metrics.json").is_file()

    result: dict = {
        "command": " ".join(sys.argv),
        "teacher": a.teacher,
        "teacher_test_accuracy": test_accuracy(Path(a.teacher)),
    }
    variants = [("distilled", "0.5", []), ("labels_only", "0", [])]
    if a.layer_match:
        variants.append(("layer_matched", "0.5", a.layer_match.split()))
    for name, alpha, match in variants:
        accs, secs = [], []
        for k in a.seeds.split(","):
            out = runs / f"{name}-s{k}"
            if reused(out):
                secs.append(None)
            else:
                secs.append(bertcls("distill", "--teacher", a.teacher, *data_args(data), "--student-layers", a.layers,
                                "--alpha", alpha, "--seed", k, "--output-dir", str(out), "--overwrite", "--no-baseline", *extra, *a.distill_extra.split(), *match))  # fmt: skip
            accs.append(test_accuracy(out))
        result[name] = {"test_accuracy": mean_std(accs), "per_seed": accs, "seconds": secs}
    pruned = runs / "pruned"
    result["pruned"] = {"seconds": None if reused(pruned) else bertcls("prune", "--source", a.teacher, *data_args(data), "--target-sparsity", a.sparsity,
                                           "--output-dir", str(pruned), "--overwrite", "--no-baseline", *extra)}  # fmt: skip
    result["pruned"] |= json.loads((pruned / "bertcls.json").read_text())["pruning"] | {
        "test_accuracy": test_accuracy(pruned)
    }
    student = runs / f"distilled-s{a.seeds.split(',')[0]}"
    report = runs / "report"
    subprocess.run([sys.executable, "-m", "bertcls", "compress", "report", a.teacher, str(student), str(pruned),
                    "--test-file", str(data / "test.csv"), "--max-drop", "1.0", "--output-dir", str(report)])  # fmt: skip
    result["report"] = json.loads((report / "report.json").read_text())
    with open(data / "test.csv", encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    result["pipeline_teacher_texts_per_s"] = pipeline_texts_per_s(a.teacher, texts)
    out = Path(a.out or HERE / "results" / f"compress_{data.name}.json")
    out.write_text(json.dumps(result, indent=2))
    t = result["teacher_test_accuracy"]
    print(f"teacher {t:.4f}")
    for name in [v[0] for v in variants]:
        m, sd = result[name]["test_accuracy"]
        print(f"{name:<12} {m:.4f} +- {sd:.4f} ({m - t:+.4f})")
    print(
        f"pruned       {result['pruned']['test_accuracy']:.4f}, encoder FLOPs x{result['pruned']['encoder_flops_ratio']:.2f}"
    )
    rows = {(r["model"], r["runtime"]): r for r in result["report"]["rows"]}
    int8 = rows.get((student.name, "onnx-int8"))
    if int8:
        print(f"student int8 {int8['texts_per_s']} texts/s = {int8['texts_per_s'] / result['pipeline_teacher_texts_per_s']:.1f}x "
              f"the teacher's transformers.pipeline ({result['pipeline_teacher_texts_per_s']})")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
