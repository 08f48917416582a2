"""Pretraining throughput: `bertcls pretrain` against the Hugging Face reference recipe, side by side.

Same corpus, tokenizer, model size, seed, batch size, sequence length, learning rate and warm-up, and the
same segment-pair instances (built by bertcls.pretrain.instances with the same seed). The HF side is the
standard recipe: `BertForPreTraining` (full-vocabulary MLM logits at every position) trained by `Trainer`
with `DataCollatorForLanguageModeling(mlm_probability=0.15)` (dynamic padding to the longest sequence in
a random batch, masks drawn by the collator), NSP labels supplied from the instances. Each side runs in
its own fresh process, one after the other, for a fixed number of optimizer steps; the timed part is the
training loop (bertcls: `train_seconds`, HF: `train_runtime`), throughput counts non-pad tokens.

    python bench/pretrain_vs_hf.py                                  # defaults: 红楼梦, tiny, 60 steps
    python bench/pretrain_vs_hf.py --preset mini --steps 100 --batch-size 32
    python bench/pretrain_vs_hf.py --corpus ../shared/data/pretrain_en/train.txt --lang en

Without --tokenizer, a WordPiece vocabulary is first trained on the corpus (`bertcls tokenizer train`).
Results are written as JSON to --out (default bench/results/pretrain_<corpus>_<preset>.json).
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

HERE = Path(__file__).resolve().parent


def ensure_tokenizer(a) -> str:
    if a.tokenizer:
        return a.tokenizer
    out = Path(tempfile.mkdtemp(prefix="bench-tok-")) / "tok"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bertcls",
            "tokenizer",
            "train",
            "--corpus",
            a.corpus,
            "--lang",
            a.lang,
            "--vocab-size",
            str(a.vocab_size),
            "--output-dir",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return str(out)


def run_ours(a, tokenizer: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-ours-")) / "run"
    cmd = [
        sys.executable,
        "-m",
        "bertcls",
        "pretrain",
        "--corpus",
        a.corpus,
        "--tokenizer",
        tokenizer,
        "--preset",
        a.preset,
        "--max-steps",
        str(a.steps),
        "--batch-size",
        str(a.batch_size),
        "--max-seq-length",
        str(a.max_seq_length),
        "--learning-rate",
        str(a.lr),
        "--warmup-ratio",
        "0.1",
        "--seed",
        str(a.seed),
        "--eval-instances",
        "0",
        "--logging-steps",
        str(a.steps),
        "--precision",
        "fp32",
        "--output-dir",
        str(out),
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    tr = json.loads((out / "metrics.json").read_text())["train"]
    last = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][-1]
    return {
        "wall_s": wall,
        "train_s": tr["train_seconds"],
        "steps": tr["steps"],
        "tokens": tr["tokens"],
        "tokens_per_s": tr["tokens"] / tr["train_seconds"],
        "steps_per_s": tr["steps"] / tr["train_seconds"],
        "final_loss": last.get("loss"),
        "dir": str(out),
    }


def hf_reference(a, tokenizer: str) -> dict:
    """The plain Hugging Face recipe (runs in this process when --side hf)."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForPreTraining,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from bertcls.pretrain import instances
    from bertcls.pretrain.corpora import load_corpora
    from bertcls.pretrain.prepare import PRESETS

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(tokenizer)
    docs = instances.tokenize_documents(tok, load_corpora([a.corpus]), whole_word=False)
    inst = instances.create_instances(docs, a.max_seq_length, 0.1, a.seed, tok.cls_token_id, tok.sep_token_id)

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(inst)

        def __getitem__(self, i):
            ids = inst.input_ids[i].tolist()
            la = int(inst.len_a[i])
            return {
                "input_ids": ids,
                "token_type_ids": [0] * (la + 2) + [1] * (len(ids) - la - 2),
                "next_sentence_label": int(inst.next_sentence_label[i]),
            }

    mlm = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    tokens: list[int] = []

    def collate(rows):
        batch = mlm(rows)
        tokens.append(int(batch["attention_mask"].sum()))
        return batch

    layers, hidden = PRESETS[a.preset]
    set_seed(a.seed)
    model = BertForPreTraining(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=max(1, hidden // 64),
            intermediate_size=4 * hidden,
            max_position_embeddings=max(512, a.max_seq_length),
            pad_token_id=tok.pad_token_id,
        )
    )
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-hf-"),
        per_device_train_batch_size=a.batch_size,
        learning_rate=a.lr,
        max_steps=a.steps,
        warmup_steps=int(0.1 * a.steps),
        weight_decay=0.01,
        max_grad_norm=1.0,
        save_strategy="no",
        logging_steps=a.steps,
        report_to=[],
        seed=a.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Pairs(), data_collator=collate)
    prep = time.perf_counter() - t0
    out = trainer.train()
    secs = out.metrics["train_runtime"]
    n_tok = sum(tokens[: a.steps])  # the loader may have prepared one batch ahead
    return {
        "wall_s": time.perf_counter() - t0,
        "prep_s": prep,
        "train_s": secs,
        "steps": a.steps,
        "tokens": n_tok,
        "tokens_per_s": n_tok / secs,
        "steps_per_s": a.steps / secs,
        "final_loss": out.training_loss,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--corpus", default=str(HERE.parent.parent / "shared" / "data" / "pretrain_zh" / "train.txt")
    )
    p.add_argument("--tokenizer", default=None, help="tokenizer directory (default: train one on --corpus)")
    p.add_argument(
        "--lang", default="zh", choices=["zh", "en", "multi"], help="for the tokenizer trained here"
    )
    p.add_argument("--vocab-size", type=int, default=12000, help="for the tokenizer trained here")
    p.add_argument("--preset", default="tiny", choices=["tiny", "mini", "small", "medium", "base"])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--side", choices=["both", "ours", "hf"], default="both")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.side == "hf":
        print(json.dumps(hf_reference(a, a.tokenizer)))
        return
    tokenizer = ensure_tokenizer(a)
    if a.side == "ours":
        print(json.dumps(run_ours(a, tokenizer)))
        return
    import platform

    import torch

    ours = run_ours(a, tokenizer)
    print("bertcls:", json.dumps(ours), flush=True)
    hf_cmd = [
        sys.executable,
        __file__,
        "--side",
        "hf",
        "--tokenizer",
        tokenizer,
        "--corpus",
        a.corpus,
        "--preset",
        a.preset,
        "--steps",
        str(a.steps),
        "--batch-size",
        str(a.batch_size),
        "--max-seq-length",
        str(a.max_seq_length),
        "--lr",
        str(a.lr),
        "--seed",
        str(a.seed),
    ]
    hf = json.loads(
        subprocess.run(hf_cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    )
    print("hf Trainer:", json.dumps(hf), flush=True)
    result = {
        "config": vars(a) | {"tokenizer": tokenizer},
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "bertcls": ours,
        "hf_trainer": hf,
        "speedup_tokens_per_s": ours["tokens_per_s"] / hf["tokens_per_s"],
        "speedup_steps_per_s": ours["steps_per_s"] / hf["steps_per_s"],
    }
    out = Path(a.out or HERE / "results" / f"pretrain_{Path(a.corpus).parent.name}_{a.preset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{'':12}{'tokens/s':>12}{'steps/s':>10}{'train s':>10}{'tokens':>10}")
    for name, r in (("bertcls", ours), ("HF Trainer", hf)):
        print(
            f"{name:12}{r['tokens_per_s']:12.0f}{r['steps_per_s']:10.3f}{r['train_s']:10.1f}{r['tokens']:10d}"
        )
    print(
        f"bertcls / HF: {result['speedup_tokens_per_s']:.2f}x non-pad tokens/s, "
        f"{result['speedup_steps_per_s']:.2f}x steps/s\nwritten to {out}"
    )


if __name__ == "__main__":
    main()
