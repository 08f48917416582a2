"""Resumable training state: weights, optimizer, scheduler, RNG and loop counters.

Written by hand rather than ``accelerator.save_state`` so that every tensor file is loaded with
``torch.load(weights_only=True)`` (no pickles from user paths) and the numpy RNG state is stored as
plain lists, which the weights-only loader accepts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bertcls.core.errors import UserError

STATE_FILE = "trainer_state.json"
HISTORY_FILE = "history.jsonl"  # the run's log records up to this checkpoint, restored with it


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    directory: str | os.PathLike,
    model_state: dict[str, torch.Tensor],
    optimizer,
    scheduler,
    loop_state: dict[str, Any],
    rng: dict[str, Any] | None = None,
    history: list[dict] | None = None,
) -> None:
    """Write the checkpoint to a temp dir and swap it in, so a crash mid-write keeps the previous one.

    The state file is written last: a ``.tmp`` with it is complete (``recover`` relies on that). The
    history travels inside, so a kill before the run's own metrics.jsonl is rewritten loses no record."""
    directory = Path(directory)
    tmp, old = _tmp(directory), _old(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # safetensors refuses shared storage (tied embeddings): clone contiguous copies.
    save_file(
        {k: v.detach().cpu().contiguous().clone() for k, v in model_state.items()},
        str(tmp / "model.safetensors"),
    )
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng if rng is not None else rng_state(), tmp / "rng.pt")
    (tmp / HISTORY_FILE).write_text("".join(json.dumps(h) + "\n" for h in history or []), encoding="utf-8")
    (tmp / STATE_FILE).write_text(json.dumps(loop_state, indent=2), encoding="utf-8")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def _tmp(directory: Path) -> Path:
    return directory.with_name(directory.name + ".tmp")


def _old(directory: Path) -> Path:
    return directory.with_name(directory.name + ".old")


def recover(directory: str | os.PathLike) -> None:
    """Repair a save killed between its two renames (``last`` gone, ``last.tmp`` and ``last.old`` left):
    the complete new copy wins, else the previous one."""
    directory = Path(directory)
    if (directory / STATE_FILE).is_file():
        return
    for candidate in (_tmp(directory), _old(directory)):
        if (candidate / STATE_FILE).is_file():
            if directory.exists():  # an empty or partial leftover: never holds the state file here
                shutil.rmtree(directory)
            os.replace(candidate, directory)
            return


def exists(directory: str | os.PathLike) -> bool:
    recover(directory)
    return (Path(directory) / STATE_FILE).is_file()


def load_history(directory: str | os.PathLike) -> list[dict] | None:
    """The history saved with the checkpoint (None for checkpoints written before it travelled along)."""
    path = Path(directory) / HISTORY_FILE
    if not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load(directory: str | os.PathLike, model, optimizer, scheduler) -> dict[str, Any]:
    directory = Path(directory)
    if not exists(directory):
        raise UserError(f"{directory}: no checkpoint to resume from; run without --resume to start fresh")
    missing, unexpected = model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=False)
    # Tied weights (e.g. MLM decoder = word embeddings) are saved once; anything else missing is an error.
    missing = [m for m in missing if not m.endswith("decoder.weight")]
    if missing or unexpected:
        raise UserError(
            f"{directory}: checkpoint does not match the model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); resume with the same --model and options"
        )
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=True))
    set_rng_state(torch.load(directory / "rng.pt", weights_only=True))
    return json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
