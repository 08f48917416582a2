"""The int8 ONNX backend's two ways to run a test set (issue 19): padded batches of 32 on one 2-thread
session (how it ran before) against every text alone, two at once on one-thread sessions (how it runs now).
Model calls only (no tokenisation), two alternating rounds; label agreement and mean |logit difference|
against PyTorch; and whether a text's logits change with the texts around it.

    python bench/int8_per_text.py --model runs/sst2-minilm-1ep --data ../shared/data/sst2/test.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from bertcls.classifier import TextClassifier
from bertcls.deploy.onnx_backend import OnnxModel

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model directory with an onnx-int8/ export")
    p.add_argument("--data", required=True, help="a CSV with a text column")
    p.add_argument("--onnx-dir", default=None, help="the int8 export (default: MODEL/onnx-int8)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results" / "int8_per_text.json"))
    a = p.parse_args()
    with open(a.data, encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    clf = TextClassifier.from_pretrained(a.model, backend="torch", ensemble=False, threads=a.threads)
    pad = clf.tokenizer.pad_token_id
    enc = clf.encode(texts)
    path = Path(a.onnx_dir or Path(a.model) / "onnx-int8") / "model.onnx"
    report = json.loads((path.parent / "export_report.json").read_text())
    modes = {"batched": None, "per_text": report}  # no report: the old batched mode
    speed: dict = {m: [] for m in modes}
    logits: dict = {}
    for _ in range(2):
        for mode, rep in modes.items():
            model = OnnxModel.from_file(path, a.threads, rep)
            model.logits(enc[:64], 32, pad)  # warm-up
            t0 = time.perf_counter()
            logits[mode] = model.logits(enc, 32, pad)
            speed[mode].append(round(len(enc) / (time.perf_counter() - t0), 1))
    ref = clf.logits(texts)
    result: dict = {"model": a.model, "texts": len(texts), "threads": a.threads, "texts_per_s": speed}
    for mode in modes:
        result[mode] = {
            "agreement_with_torch": float((logits[mode].argmax(1) == ref.argmax(1)).mean()),
            "mean_abs_logit_diff": float(np.abs(logits[mode] - ref).mean()),
        }
        model = OnnxModel.from_file(path, a.threads, modes[mode])
        first = model.logits(enc[:50], 32, pad)
        shuffled = model.logits(enc[:50][::-1] + enc[100:300], 32, pad)[:50][::-1]
        result[mode]["same_logits_in_other_company"] = bool(np.array_equal(first, shuffled))
    Path(a.out).write_text(json.dumps(result, indent=2))
    for mode in modes:
        r = result[mode]
        print(f"{mode:<9} texts/s {speed[mode]}, agreement with torch {r['agreement_with_torch']:.4f}, "
              f"mean |logit diff| {r['mean_abs_logit_diff']:.4f}, same in other company: {r['same_logits_in_other_company']}")  # fmt: skip
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
