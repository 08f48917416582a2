"""Where a fine-tuning step spends its time (issue 19): forward, backward, gradient clipping and the
optimizer step timed separately over the same length-grouped SST-2 batches bertcls trains on, for each
variant named by --variants, each in a fresh process, one after the other, repeated --repeat times
alternately (v1, v2, ..., v1, v2, ...).

Variants (comma-separated, any combination joined by '+'):
  foreach   torch.optim.AdamW's default multi-tensor implementation (what `bertcls train` used)
  fused     AdamW(fused=True), one kernel per parameter group (HF Trainer 5.x's default `adamw_torch_fused`)
  cls       the last layer computes [CLS] alone (core.cls_only, what `bertcls train` does)
  compile   torch.compile(model, dynamic=True) (inductor); its compile time is reported as warmup_s
  malloc    glibc told to keep freed memory (keep_freed_memory below) instead of returning each
            step's large activation buffers to the OS and page-faulting them back in on the next step

    python bench/train_step_profile.py --data ../shared/data/sst2 --steps 60 --variants foreach,fused,fused+malloc

Every variant starts from the same weights and sees the same batches; the JSON (default
bench/results/train_step_profile.json) has milliseconds per step for each phase, samples/s, and the model
FLOP utilisation: 6 x (non-embedding parameters) FLOPs per real (unpadded) token x tokens/s, over the
fp32 matrix-multiply throughput this process measures on the same threads (best of 5 products of two
2048 x 2048 matrices). Hypervisors hide the CPU's clock, so a measured GEMM peak stands in for the
datasheet one; it is what the model's matrix products could reach at best on this machine.
`--peak-only` prints just that peak.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def batches(a, tokenizer) -> list[dict]:
    from bertcls.core.batching import Collator, LengthGroupedBatchSampler, encode

    with open(Path(a.data) / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = sorted({r["label"] for r in rows})
    enc = encode(tokenizer, [r["text"] for r in rows], None, a.max_length)
    for e, r in zip(enc, rows):
        e["labels"] = labels.index(r["label"])
    sampler = LengthGroupedBatchSampler([len(e["input_ids"]) for e in enc], a.batch_size, a.seed)
    collate = Collator(tokenizer.pad_token_id)
    return [collate([enc[i] for i in b]) for b in sampler.batches()[: a.steps + a.warmup]]


def run_variant(a, variant: str, state: dict, data: list[dict]) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    from bertcls.core import rundir
    from bertcls.core.cls_only import cls_only
    from bertcls.core.models import resolve_model

    parts = set(variant.split("+"))
    if "malloc" in parts:
        keep_freed_memory()  # process-wide: why each variant has its own process
    torch.manual_seed(a.seed)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model(a.model), num_labels=2)
    model.load_state_dict(state)
    model.train()
    fast = cls_only(model, enabled="cls" in parts)
    on = fast.__enter__()  # kept referenced: a collected context manager would undo the patch
    if "compile" in parts:
        model = torch.compile(model, dynamic=True)
    opt = torch.optim.AdamW(
        rundir.param_groups(model, 0.01), lr=a.lr, fused="fused" in parts, foreach="fused" not in parts
    )
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "clip": [], "optimizer": []}
    t_start = None
    tokens = 0
    t_first = time.perf_counter()
    warmup_s = 0.0
    for i, batch in enumerate(data):
        if i == a.warmup:
            warmup_s = time.perf_counter() - t_first
            t_start = time.perf_counter()
            phases = {k: [] for k in phases}
            tokens = 0
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(**inputs).logits, labels)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        loss.item()
        for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[k].append(v * 1000)
        tokens += int(batch["attention_mask"].sum())
    wall = time.perf_counter() - t_start
    steps = len(data) - a.warmup
    return {
        "variant": variant,
        "ms_per_step": {k: round(statistics.mean(v), 2) for k, v in phases.items()},
        "samples_per_s": round(steps * a.batch_size / wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "wall_s": round(wall, 2),
        "warmup_s": round(warmup_s, 2),
        "warmup_steps": a.warmup,
        "non_embedding_params": non_embedding_params(model),
        "cls_only": on,
    }


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    A training step frees and re-allocates the same large buffers every step (activations, the
    word-embedding gradient: 47 MB for a 30k x 384 vocabulary). glibc serves blocks above its mmap
    threshold with fresh mmap()s and trims the heap's free top, so each step page-faults that memory back
    in, zeroed. PyTorch's CPU performance guide recommends swapping in jemalloc/tcmalloc with LD_PRELOAD
    for this; a running process cannot preload, but mallopt() gives the same reuse with glibc itself.
    The cost is a resident set that stays at its peak. Returns False where this is not glibc. Measured
    here only (no gain beyond noise), so it is not part of `bertcls train`."""
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 1 << 30))


def gemm_peak_gflops(n: int = 2048, rounds: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def non_embedding_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/sst2")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--variants", default="foreach,fused")
    p.add_argument("--repeat", type=int, default=2, help="rounds over all variants, alternating")
    p.add_argument("--out", default=str(HERE / "results" / "train_step_profile.json"))
    p.add_argument("--peak-only", action="store_true", help="print the measured GEMM peak and stop")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run this variant, print its JSON
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.one:
        print(json.dumps(one(a)))
        return
    import torch

    peak = gemm_peak_gflops()
    print(f"fp32 GEMM peak on {torch.get_num_threads()} threads: {peak:.1f} GFLOP/s", flush=True)
    if a.peak_only:
        return

    rounds = []
    for r in range(a.repeat):
        for v in a.variants.split(","):
            cmd = [sys.executable, __file__, *sys.argv[1:], "--one", v]
            res = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
            )
            res["round"] = r
            res["mfu"] = round(6 * res["non_embedding_params"] * res["tokens_per_s"] / (peak * 1e9), 3)
            print(json.dumps(res), flush=True)
            rounds.append(res)
    out = {
        "config": vars(a),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gemm_peak_gflops": round(peak, 1),
        "runs": rounds,
    }
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {a.out}")


def one(a) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertcls.core.models import resolve_model

    path = resolve_model(a.model)
    torch.manual_seed(a.seed)
    state = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).state_dict()
    data = batches(a, AutoTokenizer.from_pretrained(path))
    return run_variant(a, a.one, state, data)


if __name__ == "__main__":
    main()
