"""Fine-tuning benchmark: `bertcls train` against a plain Hugging Face `Trainer` script, side by side.

Same model, data, epochs, batch size, learning rate, warm-up, weight decay, max length and seed. The HF
side is the course-style recipe (tokenize with truncation, `DataCollatorWithPadding`, `Trainer` with
per-epoch evaluation, then `trainer.predict` on test). Each side runs in its own fresh process, one after
the other, on the same machine; wall time is each process's, start to exit (imports, load model,
tokenize, train, per-epoch evaluation, test prediction; bertcls also fits its TF-IDF baseline and writes
plots and a model card). The training-loop figure is HF's `train_runtime` (which includes its per-epoch
evaluation) against bertcls's `train.runtime_s` (which does not).

HF's side uses its best CPU configuration by default: `train_sampling_strategy="group_by_length"` (its own
length grouping, one flag; `--hf-sampling random` for the plain script). In transformers 5.x that strategy
also length-groups the evaluation sampler, so `trainer.predict` would return test predictions out of order:
the strategy is reset to "random" before predicting. `--repeat 2` runs ours, HF, ours, HF, each in a fresh
process, and reports every pair's ratio, so the noise is visible.

    python bench/finetune_vs_hf.py --data ../shared/data/sst2 --epochs 1 --repeat 2   # both, prints ratios
    python bench/finetune_vs_hf.py --data ../shared/data/sst2 --max-train 500 --epochs 1   # quick check

Results are written as JSON to --out (default bench/results/finetune_<data>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_ours(a) -> dict:
    out = Path(a.ours_dir) if a.ours_dir else Path(tempfile.mkdtemp(prefix="bench-ours-"))
    cmd = [
        sys.executable,
        "-m",
        "bertcls",
        "train",
        "--model",
        a.model,
        "--train-file",
        str(Path(a.data) / "train.csv"),
        "--test-file",
        str(Path(a.data) / "test.csv"),
        "--epochs",
        str(a.epochs),
        "--batch-size",
        str(a.batch_size),
        "--learning-rate",
        str(a.lr),
        "--max-length",
        str(a.max_length),
        "--seed",
        str(a.seed),
        "--precision",
        a.precision,
        "--output-dir",
        str(out / "run"),
        "--overwrite",
    ]
    if (Path(a.data) / "dev.csv").exists():
        cmd += ["--validation-file", str(Path(a.data) / "dev.csv")]
    if a.max_train:
        cmd += ["--max-train-samples", str(a.max_train)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    m = json.loads((out / "run" / "metrics.json").read_text())
    return {
        "wall_s": wall,
        "accuracy": m["test"]["accuracy"],
        "f1_macro": m["test"]["f1_macro"],
        "n_train": m["train"]["n_train"],
        "train_loop_s": m["train"]["runtime_s"],
        "dir": str(out / "run"),
    }


def hf_reference(a) -> dict:
    """The plain Hugging Face script (runs in this process when --side hf)."""
    import csv

    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from bertcls.core.models import resolve_model

    t0 = time.perf_counter()
    set_seed(a.seed)

    def read(name):
        p = Path(a.data) / name
        if not p.exists():
            return None
        with open(p, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [r["text"] for r in rows], [r["label"] for r in rows]

    train, dev, test = read("train.csv"), read("dev.csv"), read("test.csv")
    labels = sorted(set(train[1]))
    if a.max_train and a.max_train < len(train[0]):
        from sklearn.model_selection import train_test_split

        idx, _ = train_test_split(
            range(len(train[0])), train_size=a.max_train, random_state=a.seed, stratify=train[1]
        )
        train = ([train[0][i] for i in idx], [train[1][i] for i in idx])
    path = resolve_model(a.model)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)},
    )

    class DS(torch.utils.data.Dataset):
        def __init__(self, texts, ys):
            self.enc = tok(texts, truncation=True, max_length=a.max_length)
            self.ys = [labels.index(y) for y in ys]

        def __len__(self):
            return len(self.ys)

        def __getitem__(self, i):
            return {
                "input_ids": self.enc["input_ids"][i],
                "attention_mask": self.enc["attention_mask"][i],
                "token_type_ids": self.enc["token_type_ids"][i],
                "labels": self.ys[i],
            }

    def compute_metrics(p):
        pred = np.argmax(p.predictions, axis=1)
        return {
            "accuracy": accuracy_score(p.label_ids, pred),
            "f1_macro": f1_score(p.label_ids, pred, average="macro"),
        }

    ds_train = DS(*train)
    steps = -(-len(ds_train) // a.batch_size) * a.epochs
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-hf-"),
        per_device_train_batch_size=a.batch_size,
        per_device_eval_batch_size=128,
        learning_rate=a.lr,
        num_train_epochs=a.epochs,
        weight_decay=0.01,
        warmup_steps=int(0.1 * steps),
        max_grad_norm=1.0,
        eval_strategy="epoch" if dev else "no",
        save_strategy="no",
        logging_steps=10,
        report_to=[],
        seed=a.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        bf16=a.precision == "bf16",
        train_sampling_strategy=a.hf_sampling,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ds_train,
        eval_dataset=DS(*dev) if dev else None,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=compute_metrics,
    )
    fit = trainer.train()
    # group_by_length also reorders evaluation batches (transformers 5.x): predict in input order
    trainer.args.train_sampling_strategy = "random"
    pred = trainer.predict(DS(*test))
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "accuracy": pred.metrics["test_accuracy"],
        "f1_macro": pred.metrics["test_f1_macro"],
        "n_train": len(ds_train),
        "train_loop_s": fit.metrics["train_runtime"],
    }


def pair(a, i: int) -> tuple[dict, dict]:
    """One side-by-side pair: ours, then HF, each in a fresh process."""
    ours = run_ours(a)
    print(f"[{i}] bertcls:", json.dumps(ours), flush=True)
    hf_cmd = [sys.executable, __file__, "--side", "hf"] + sys.argv[1:]
    t0 = time.perf_counter()
    done = subprocess.run(hf_cmd, check=True, capture_output=True, text=True)
    process_wall = time.perf_counter() - t0
    hf = json.loads(done.stdout.strip().splitlines()[-1])
    # Both sides timed the same way: the whole process (start, imports, work, exit), as ours is.
    hf["wall_after_imports_s"], hf["wall_s"] = hf["wall_s"], process_wall
    print(f"[{i}] hf Trainer:", json.dumps(hf), flush=True)
    n = ours["n_train"] * a.epochs
    for r in (ours, hf):
        r["train_samples_per_s_end_to_end"] = n / r["wall_s"]
        r["train_samples_per_s_loop"] = n / r["train_loop_s"]
    return ours, hf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", default="../shared/data/sst2", help="folder with train.csv, test.csv (dev.csv optional)"
    )
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-train", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="the same numeric precision on both sides (bf16: autocast, needs a CPU with AVX512-BF16/AMX)",
    )
    p.add_argument("--side", choices=["both", "ours", "hf"], default="both")
    p.add_argument(
        "--hf-sampling",
        choices=["group_by_length", "random"],
        default="group_by_length",
        help="HF Trainer's train_sampling_strategy (group_by_length: its best configuration)",
    )
    p.add_argument("--repeat", type=int, default=1, help="pairs run alternately: ours, HF, ours, HF, ...")
    p.add_argument("--out", default=None)
    p.add_argument(
        "--ours-dir", default=None, help="keep bertcls's trained model under DIR/run (default: a temp dir)"
    )
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.side == "hf":
        print(json.dumps(hf_reference(a)))
        return
    if a.side == "ours":
        print(json.dumps(run_ours(a)))
        return
    import platform

    import torch

    from bertcls.core.runtime import cpu_has_fast_bf16

    pairs = [pair(a, i) for i in range(a.repeat)]
    ours, hf = pairs[-1]
    result = {
        "config": vars(a),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "cpu_bf16": cpu_has_fast_bf16(),
        },
        "pairs": [{"bertcls": o, "hf_trainer": h} for o, h in pairs],
        "bertcls": ours,
        "hf_trainer": hf,
        "speedup_wall": [h["wall_s"] / o["wall_s"] for o, h in pairs],
        "speedup_train_loop": [h["train_loop_s"] / o["train_loop_s"] for o, h in pairs],
        "accuracy_delta_points": [100 * (o["accuracy"] - h["accuracy"]) for o, h in pairs],
    }
    out = Path(a.out or Path(__file__).parent / "results" / f"finetune_{Path(a.data).name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{'':16}{'accuracy':>10}{'macro-F1':>10}{'wall s':>10}{'samples/s':>11}{'loop samples/s':>16}")
    for i, (o, h) in enumerate(pairs):
        for name, r in ((f"[{i}] bertcls", o), (f"[{i}] HF Trainer", h)):
            print(
                f"{name:16}{r['accuracy']:10.4f}{r['f1_macro']:10.4f}{r['wall_s']:10.1f}"
                f"{r['train_samples_per_s_end_to_end']:11.1f}{r['train_samples_per_s_loop']:16.1f}"
            )
    walls = ", ".join(f"{x:.2f}x" for x in result["speedup_wall"])
    loops = ", ".join(f"{x:.2f}x" for x in result["speedup_train_loop"])
    print(f"speed-up, HF / bertcls: wall {walls}; training loop {loops} (HF sampling: {a.hf_sampling})")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
