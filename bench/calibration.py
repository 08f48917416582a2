"""Calibration of trained models (issue 16): ECE and NLL before and after temperature scaling.

For each model directory: logits on the validation and test files (the model alone, torch), the
temperature fitted on validation with ``core.calibration.fit_temperature`` (what ``train --calibrate
temperature`` does at the end of a run), and ECE (15 bins) / NLL / accuracy on both splits before and
after. Writes JSON and a reliability diagram per model.

    python bench/calibration.py runs/sst2-minilm-1ep:../shared/data/sst2 \
        runs/chnsenticorp-zh-tapt:../shared/data/chnsenticorp --threads 2
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def read(path: Path) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def figures(logits: np.ndarray, y: np.ndarray) -> dict:
    from bertcls.core import calibration, metrics

    probs = metrics.softmax(logits)
    return {
        "ece": calibration.reliability(probs, y, False)["ece"],
        "nll": calibration.nll(logits, y, False),
        "accuracy": float((probs.argmax(1) == y).mean()),
    }


def one(model_dir: str, data: Path, threads: int) -> dict:
    from bertcls import TextClassifier
    from bertcls.core import calibration, metrics
    from bertcls.core.plots import reliability

    clf = TextClassifier.from_pretrained(model_dir, threads=threads, ensemble=False)
    out = {"model": model_dir, "data": str(data)}
    logits, ys = {}, {}
    for split, name in (("validation", "dev.csv"), ("test", "test.csv")):
        texts, labels = read(data / name)
        logits[split] = clf.logits(texts)
        ys[split] = np.array([clf.labels.index(lab) for lab in labels])
    t = calibration.fit_temperature(logits["validation"], ys["validation"], multi=False)
    out["temperature"] = t
    for split in ("validation", "test"):
        out[split] = {
            "before": figures(logits[split], ys[split]),
            "after": figures(logits[split] / t, ys[split]),
        }
    panels = [
        (name, calibration.reliability(metrics.softmax(z), ys["test"], False))
        for name, z in (("before", logits["test"]), (f"after (T = {t:.2f})", logits["test"] / t))
    ]
    png = HERE / "results" / f"calibration_{Path(model_dir).name}.png"
    reliability(panels, png, f"test, {Path(model_dir).name}")
    out["png"] = str(png.relative_to(HERE.parent))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pairs", nargs="+", help="MODEL_DIR:DATA_DIR (DATA_DIR holds dev.csv and test.csv)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results" / "calibration.json"))
    a = p.parse_args()
    rows = []
    for pair in a.pairs:
        model, data = pair.split(":", 1)
        rows.append(one(model, Path(data), a.threads))
        r = rows[-1]
        for split in ("validation", "test"):
            b, f = r[split]["before"], r[split]["after"]
            print(f"{Path(model).name:<28} {split:<10} T {r['temperature']:.3f}  ECE {b['ece']:.4f} -> {f['ece']:.4f}  "
                  f"NLL {b['nll']:.4f} -> {f['nll']:.4f}  accuracy {b['accuracy']:.4f}")  # fmt: skip
    Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
