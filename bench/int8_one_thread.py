"""The int8 ONNX backend at --threads 1 (a Ray actor, a one-thread server): texts run inline in the calling
thread, against the same calls through a one-worker thread pool (what the backend did before), in one
process, alternating rounds; logits must be identical (issue 19).

    python bench/int8_one_thread.py --model runs/sst2-minilm-1ep --data ../shared/data/sst2/train.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    from bertcls.classifier import TextClassifier

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--onnx-dir", default="onnx-int8")
    p.add_argument("--data", required=True, help="a CSV with a text column")
    p.add_argument("--texts", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results" / "int8_one_thread.json"))
    a = p.parse_args()
    clf = TextClassifier.from_pretrained(a.model, backend="onnx", threads=1, onnx_dir=a.onnx_dir)
    model = clf.model
    assert model.workers == 1, "not a per-text int8 export"
    with open(a.data, encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)][: a.texts]
    encodings = clf.encode(texts)
    pool = ThreadPoolExecutor(1)

    rounds = []
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        inline = model._per_text(encodings)
        t1 = time.perf_counter()
        pooled = np.stack(list(pool.map(model._run_text, encodings)))  # the backend's own call
        t2 = time.perf_counter()
        r = {"inline_texts_per_s": round(len(texts) / (t1 - t0), 1),
             "pool_texts_per_s": round(len(texts) / (t2 - t1), 1),
             "identical": bool(np.array_equal(inline, pooled))}  # fmt: skip
        r["speedup"] = round(r["inline_texts_per_s"] / r["pool_texts_per_s"], 3)
        rounds.append(r)
        print(r, flush=True)
    result = {"command": " ".join(sys.argv), "texts": len(texts), "rounds": rounds}
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
