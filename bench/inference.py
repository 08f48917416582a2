"""CPU inference benchmark: transformers.pipeline vs bertcls (torch, ONNX fp32, ONNX int8), side by side.

On a labelled CSV (e.g. SST-2 test) with a fine-tuned model directory, measures accuracy and texts/s of

    pipeline   transformers.pipeline("text-classification", device="cpu", batch_size=32)
    torch      bertcls TextClassifier, torch backend (length-sorted batches, dynamic padding)
    onnx       bertcls TextClassifier, onnxruntime on MODEL_DIR/onnx (fp32, BERT-fused graph)
    onnx-int8  the same on MODEL_DIR/onnx-int8 (dynamic int8 quantization)

for each thread count in --threads. Every (backend, threads) runs in a fresh subprocess with torch,
onnxruntime, OpenMP and the tokenizer's thread pool all set to that count, so settings cannot leak
between runs. Timing covers tokenization + inference over all texts after a short warm-up (model load
is reported separately). Missing ONNX exports are created first with `bertcls.deploy.export.run`. Prints a
table with speed ratios against the pipeline and writes JSON (default bench/results/inference_<model>.json).

    python bench/inference.py --model-dir runs/sst2 --data ../shared/data/sst2/test.csv
    python bench/inference.py --model-dir runs/sst2 --data ../shared/data/sst2/test.csv --limit 200   # quick
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKENDS = ("pipeline", "torch", "onnx", "onnx-int8")
ONNX_DIRS = {"onnx": ("onnx", "none"), "onnx-int8": ("onnx-int8", "int8")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", required=True, help="fine-tuned model directory (bertcls train output)")
    p.add_argument("--data", required=True, help="labelled CSV")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--limit", type=int, help="use only the first N rows (quick checks)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    p.add_argument("--batch-size", type=int, default=32, help="batch size for every backend")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    p.add_argument("--repeats", type=int, default=1, help="timed passes per run (median reported)")
    p.add_argument(
        "--int8-min-agreement",
        type=float,
        default=0.95,
        help="label agreement with PyTorch an int8 export created here must reach",
    )
    p.add_argument("--out", help="JSON output path")
    p.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.limit is not None and a.limit < 1:
        p.error("--limit must be >= 1")
    if any(t < 1 for t in a.threads) or a.batch_size < 1 or a.repeats < 1:
        p.error("--threads, --batch-size and --repeats must be >= 1")
    return a


def read_data(a: argparse.Namespace) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    with open(a.data, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {a.text_column, a.label_column} - set(reader.fieldnames or [])
        if missing:
            sys.exit(
                f"{a.data}: missing column(s) {', '.join(sorted(missing))}; columns are {reader.fieldnames}"
            )
        for row in reader:
            if row[a.text_column].strip():
                texts.append(row[a.text_column])
                labels.append(str(row[a.label_column]).strip())
            if a.limit and len(texts) >= a.limit:
                break
    return texts, labels


# ---- one run (in its own process) ---------------------------------------------------------------------
def worker(a: argparse.Namespace) -> None:
    threads = a.threads[0]
    import torch

    torch.set_num_threads(threads)
    texts, labels = read_data(a)
    t0 = time.perf_counter()
    if a.worker == "pipeline":
        from transformers import pipeline

        meta = (
            json.loads((Path(a.model_dir) / "bertcls.json").read_text())
            if (Path(a.model_dir) / "bertcls.json").is_file()
            else {}
        )
        max_length = int(meta.get("max_length", 512))
        clf = pipeline("text-classification", model=a.model_dir, device="cpu", batch_size=a.batch_size)

        def predict(xs: list[str]) -> list[str]:
            # Same truncation as bertcls (the training max_length) so both read the same tokens.
            return [
                r["label"] for r in clf(xs, batch_size=a.batch_size, truncation=True, max_length=max_length)
            ]
    else:
        from bertcls import TextClassifier

        backend, onnx_dir = ("torch", None) if a.worker == "torch" else ("onnx", ONNX_DIRS[a.worker][0])
        model = TextClassifier.from_pretrained(
            a.model_dir, backend=backend, threads=threads, device="cpu", onnx_dir=onnx_dir
        )
        model.batch_size = a.batch_size

        def predict(xs: list[str]) -> list[str]:
            return [str(x) for x in model.predict(xs)]

    load_s = time.perf_counter() - t0
    predict(texts[: min(len(texts), 2 * a.batch_size)])  # warm-up: first-call allocations, lazy init
    times, preds = [], []
    for _ in range(a.repeats):
        t = time.perf_counter()
        preds = predict(texts)
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    result = {
        "backend": a.worker,
        "threads": threads,
        "n": len(texts),
        "seconds": round(seconds, 4),
        "texts_per_s": round(len(texts) / seconds, 2),
        "load_s": round(load_s, 2),
        "accuracy": round(sum(p == y for p, y in zip(preds, labels)) / len(labels), 4),
        "predictions": preds,
    }
    Path(a.worker_out).write_text(json.dumps(result), encoding="utf-8")


def run_worker(a: argparse.Namespace, backend: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            backend,
            "--worker-out",
            str(out),
            "--model-dir",
            a.model_dir,
            "--data",
            a.data,
            "--text-column",
            a.text_column,
            "--label-column",
            a.label_column,
            "--threads",
            str(threads),
            "--batch-size",
            str(a.batch_size),
            "--repeats",
            str(a.repeats),
        ]
        if a.limit:
            cmd += ["--limit", str(a.limit)]
        thread_env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")}
        env = (
            os.environ
            | thread_env
            | {"TOKENIZERS_PARALLELISM": "true", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        )
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return {
                "backend": backend,
                "threads": threads,
                "error": " | ".join(tail) or f"exit {proc.returncode}",
            }
        return json.loads(out.read_text(encoding="utf-8"))


def ensure_exports(a: argparse.Namespace) -> dict:
    """Create the ONNX exports the run needs (in this process, before any timing)."""
    from bertcls.core.errors import UserError
    from bertcls.deploy.export import ExportConfig
    from bertcls.deploy.export import run as export
    from bertcls.deploy.onnx_backend import MODEL_FILE, read_report

    meta_file = Path(a.model_dir) / "bertcls.json"
    trained_col = (json.loads(meta_file.read_text()) if meta_file.is_file() else {}).get(
        "text_column"
    ) or "text"
    # Real sentences from the data make the export's parity check meaningful (when the columns line up).
    sample = a.data if trained_col == a.text_column else None
    reports = {}
    for backend in (b for b in a.backends if b in ONNX_DIRS):
        folder, quantize = ONNX_DIRS[backend]
        path = Path(a.model_dir) / folder
        if not (path / MODEL_FILE).is_file():
            print(f"creating {path} (bertcls export --quantize {quantize}) ...", file=sys.stderr)
            try:
                export(
                    ExportConfig(
                        model_dir=a.model_dir,
                        quantize=quantize,
                        sample_file=sample,
                        num_samples=200,
                        min_agreement=a.int8_min_agreement if quantize == "int8" else None,
                    )
                )
            except UserError as e:
                reports[backend] = {"error": str(e)}
                continue
        r = read_report(path)
        reports[backend] = {
            k: r.get(k) for k in ("quantize", "graph", "exporter", "opset", "size_bytes", "parity")
        }
    return reports


def cpu_features() -> list[str]:
    """The CPU flags that decide int8/bf16 speed (VNNI: fast int8 dot products; BF16/AMX: fast bf16)."""
    from bertcls.core.runtime import cpu_flags

    return sorted(
        f
        for f in cpu_flags()
        if "vnni" in f or "bf16" in f or f.startswith("amx") or f in ("avx2", "avx512f")
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.worker:
        worker(a)
        return 0
    texts, _ = read_data(a)
    exports = ensure_exports(a)
    runs = []
    for threads in a.threads:
        for backend in a.backends:
            if "error" in exports.get(backend, {}):
                runs.append({"backend": backend, "threads": threads, "error": exports[backend]["error"]})
                continue
            print(f"running {backend} with {threads} thread(s) on {len(texts)} texts ...", file=sys.stderr)
            runs.append(run_worker(a, backend, threads))
    for r in runs:  # ratios and agreement against the pipeline / torch backend at the same thread count
        same = {x["backend"]: x for x in runs if x["threads"] == r["threads"] and "error" not in x}
        if "error" in r:
            continue
        if "pipeline" in same:
            r["x_pipeline"] = round(r["texts_per_s"] / same["pipeline"]["texts_per_s"], 2)
        if "torch" in same:
            ref = same["torch"]["predictions"]
            r["agreement_vs_torch"] = round(sum(p == q for p, q in zip(r["predictions"], ref)) / len(ref), 4)
    for r in runs:
        r.pop("predictions", None)

    import onnxruntime
    import torch
    import transformers

    from bertcls import __version__

    name = Path(a.model_dir.rstrip("/")).name
    report = {
        "model_dir": str(Path(a.model_dir).resolve()),
        "data": a.data,
        "n": len(texts),
        "batch_size": a.batch_size,
        "repeats": a.repeats,
        "cpu": cpu_name(),
        "cpu_features": cpu_features(),
        "cpu_count": os.cpu_count(),
        "exports": exports,
        "runs": runs,
        "versions": {
            "bertcls": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(),
        },
    }
    print(
        f"\n{name} on {a.data} ({len(texts)} texts, batch size {a.batch_size}, CPU: {report['cpu']}, "
        f"{' '.join(report['cpu_features'])})"
    )
    print(
        f"{'threads':>7}  {'backend':<10} {'accuracy':>8} {'texts/s':>9} {'x pipeline':>10} {'agree torch':>11}"
    )
    for r in runs:
        if "error" in r:
            print(f"{r['threads']:>7}  {r['backend']:<10} failed: {r['error'][:100]}")
            continue
        agree = f"{r['agreement_vs_torch']:.2%}" if "agreement_vs_torch" in r else "-"
        ratio = f"{r['x_pipeline']:.2f}" if "x_pipeline" in r else "-"
        print(
            f"{r['threads']:>7}  {r['backend']:<10} {r['accuracy']:>8.4f} {r['texts_per_s']:>9.1f} "
            f"{ratio:>10} {agree:>11}"
        )
    out = Path(a.out) if a.out else Path(__file__).parent / "results" / f"inference_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
