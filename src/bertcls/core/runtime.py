"""Device, precision, logging and progress shared by the long-running commands."""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

from bertcls.core.errors import UserError


class Interrupted(UserError):
    """Ctrl-C during a long job: the state was saved; the CLI exits with 130."""

    exit_code = 130


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where that is unavailable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_has_fast_bf16() -> bool:
    """bf16 autocast only pays off on CPUs with AMX or AVX512-BF16; elsewhere it is emulated and slower."""
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def resolve_precision(precision: str) -> str:
    import torch

    if precision == "fp32":
        return "no"
    if precision == "auto":
        if torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "no"
    if precision == "fp16" and not torch.cuda.is_available():
        raise UserError("--precision=fp16 needs a CUDA GPU; use --precision bf16 or fp32 on CPU")
    return precision


def make_accelerator(precision: str, gradient_accumulation_steps: int = 1):
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    mixed = resolve_precision(precision)
    # accelerate keeps one precision per process and refuses another: a bf16 `train` followed by a setfit
    # run (always fp32) in one Python session crashed on CPUs with fast bf16. Forget the earlier run's
    # precision; the process group (PartialState) is kept.
    if AcceleratorState._shared_state.get("_mixed_precision", mixed) != mixed:
        AcceleratorState._reset_state()
    # We accumulate by hand (no_sync + explicit step) so accelerate is told 1 here. cpu=True without a GPU
    # is what lets accelerate see torchrun/`accelerate launch` variables and start gloo data-parallel.
    return Accelerator(
        mixed_precision=mixed,
        gradient_accumulation_steps=1,
        cpu=not torch.cuda.is_available(),
    )


def setup_logging(path: str | os.PathLike | None, main_process: bool = True) -> logging.Logger:
    """Log to ``path`` (full detail) and stderr (info), without duplicating handlers across runs."""
    log = logging.getLogger("bertcls")
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        if getattr(h, "_bertcls", False):
            log.removeHandler(h)
            h.close()
    if not main_process:
        return log
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if path is not None:
        fh = logging.FileHandler(path, encoding="utf-8")
        fh.setFormatter(fmt)
        fh._bertcls = True  # type: ignore[attr-defined]
        log.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(logging.Formatter("%(message)s"))
    sh._bertcls = True  # type: ignore[attr-defined]
    log.addHandler(sh)
    log.propagate = False
    return log


def worker_threads(threads: int | None, workers: int) -> int | None:
    """Torch threads for each of ``workers`` processes sharing the machine: --threads if given, else the
    cores split between them; a single worker keeps torch's own choice (None)."""
    if threads or workers <= 1:
        return threads
    return max(1, (os.cpu_count() or 1) // workers)


def progress(**kwargs):
    from tqdm.auto import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 1.0)
    return tqdm(**kwargs)


def adamw(groups: list[dict], lr: float):
    """AdamW for `train` and `pretrain`: the fused implementation (one pass over each parameter group per
    step; HF Trainer 5.x's default `adamw_torch_fused` too). torch's default, the multi-tensor "foreach"
    version, makes a dozen passes over every parameter, and on a 2-core CPU that was 74 ms of a ~600 ms
    MiniLM fine-tuning step, against 14-22 ms fused (bench/train_step_profile.py). Checkpoints are interchangeable between the two."""
    import torch

    return torch.optim.AdamW(groups, lr=lr, fused=True)


def optimizer_step(
    accelerator,
    model,
    optimizer,
    scheduler,
    max_grad_norm: float,
    state: dict,
    micro: int,
    batches_per_epoch: int,
) -> dict:
    """One optimizer step at an accumulation boundary, shared by `train` and `pretrain`: clip, step,
    schedule, zero grads, advance the loop counters (rolling over the epoch). Returns the RNG state at this
    boundary, which is what a checkpoint must save for an exact resume."""
    from bertcls.core.checkpoint import rng_state

    if max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    state["global_step"] += 1
    state["batches_done"] += micro
    if state["batches_done"] >= batches_per_epoch:
        state["epoch"] += 1
        state["batches_done"] = 0
    return rng_state()


def check_loss(verb: str, value: float, step: int) -> None:
    """A NaN or infinite training loss ends the run with one line. Every later step would train on (and
    publish) poisoned weights: a `pretrain` on CUDA once ran 1,800 steps of NaN and saved them. The check
    runs before the optimizer step and before each checkpoint, so a kept checkpoint is still finite."""
    if not math.isfinite(value):
        raise UserError(
            f"{verb}: the training loss became {value} at step {step}, so the run stopped and the output "
            "directory was left as it was; lower --learning-rate, raise --warmup-ratio, or use --precision fp32"
        )


def quiet_libraries() -> None:
    """transformers draws a "Loading weights" progress bar for every model it loads (a 6-layer model
    loads in well under a second); our own bars show the work that takes time."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
