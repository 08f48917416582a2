"""Augmentation (issue 15): `bertcls train --augment METHOD:N` against the same training without it, on
stratified subsets of a few hundred training texts, each seed drawing its own subset (and seeding the run).

Validation and test are the data's dev.csv and test.csv, whole, for every cell (augmentation touches the
training rows only). Every run also fits the TF-IDF baseline on its training rows, augmented ones
included, so each variant has a `tfidf+VARIANT` cell too.

    python bench/augment.py --data ../shared/data/sst2 --sizes 500,1000 --variants none,eda:4
    python bench/augment.py --data ../shared/data/chnsenticorp --model runs/zh-recipe \
        --config configs/train/chnsenticorp-zh-tiny.yaml --variants none,eda:4,mlm:4 \
        --augment-model runs/zh-recipe

The result file is resumable: a cell measured already is skipped on the next call.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fewshot import mean_std, read, subset, train, write  # one home for the subset and run helpers

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--config", default=None, help="a train config for every run (data flags override it)")
    p.add_argument("--sizes", default="500,1000", help="training texts per subset (split evenly by class)")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--variants", default="none,eda:4", help="none, or METHOD:N for train --augment")
    p.add_argument("--augment-model", default=None, help="the MLM model for mlm:N")
    p.add_argument("--extra", default="", help="more train flags for every run")
    p.add_argument("--runs", default="runs/bench-augment")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    data = Path(a.data)
    runs = Path(a.runs) / data.name
    rows = read(data / "train.csv")
    classes = len({r["label"] for r in rows})
    out_file = Path(a.out or HERE / "results" / f"augment_{data.name}.json")
    result = json.loads(out_file.read_text()) if out_file.is_file() else {}
    result |= {"command": " ".join(sys.argv), "model": a.model, "config": a.config}
    cells = result.setdefault("cells", {})
    for n in map(int, a.sizes.split(",")):
        for seed in a.seeds.split(","):
            sub = write(runs / f"n{n}-s{seed}" / "train.csv", subset(rows, n // classes, int(seed)))
            common = [*(["--config", a.config] if a.config else []), "--model", a.model,
                      "--train-file", str(sub), "--validation-file", str(data / "dev.csv"),
                      "--test-file", str(data / "test.csv"), "--seed", seed, *a.extra.split()]  # fmt: skip
            for variant in a.variants.split(","):
                key = f"{variant}/{n}"
                cell = cells.setdefault(key, {"per_seed": {}, "validation": {}, "seconds": {}})
                if seed in cell["per_seed"]:
                    continue
                extra = [] if variant == "none" else ["--augment", variant]
                if variant.startswith("mlm") and a.augment_model:
                    extra += ["--augment-model", a.augment_model]
                m, secs = train([*common, *extra], runs / f"n{n}-s{seed}" / variant.replace(":", "-"))
                cell["per_seed"][seed], cell["seconds"][seed] = m["test"]["accuracy"], secs
                cell["validation"][seed] = m["validation"]["accuracy"]
                if "baseline" in m:
                    tf = cells.setdefault(
                        f"tfidf+{variant}/{n}", {"per_seed": {}, "validation": {}, "seconds": {}}
                    )
                    tf["per_seed"][seed] = m["baseline"]["test"]["accuracy"]
                    tf["validation"][seed] = m["baseline"]["validation"]["accuracy"]
                print(f"{key} seed {seed}: test accuracy {m['test']['accuracy']:.4f} in {secs} s", flush=True)
                for c in cells.values():
                    c["test_accuracy"] = mean_std(list(c["per_seed"].values()))
                    c["validation_accuracy"] = mean_std(list(c["validation"].values()))
                out_file.write_text(json.dumps(result, indent=2))
    print(f"{'variant/size':<14} {'test accuracy':>16}  {'validation':>16}  seeds")
    for key, c in sorted(cells.items(), key=lambda kv: (int(kv[0].split("/")[1]), kv[0])):
        (m, sd), (vm, vsd) = c["test_accuracy"], c["validation_accuracy"]
        print(f"{key:<14} {m:.4f} +- {sd:.4f}  {vm:.4f} +- {vsd:.4f}  {len(c['per_seed'])}")
    print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
