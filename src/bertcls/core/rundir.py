"""Output and run directories shared by the commands that write one.

Two rules: bertcls never deletes what it did not create, and never removes a previous result before the new
one is complete. ``check_output_dir`` decides up front (before any work) whether a directory may be
written or replaced; long runs (`train`, `pretrain`) then work in ``<out>.partial`` and ``publish`` swaps
it in at the end (``io.replace_dir``), so a failed or interrupted run leaves the previous model untouched,
and ``--resume`` finds the interrupted run's checkpoints in ``<out>.partial``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bertcls.core import checkpoint
from bertcls.core.errors import UserError
from bertcls.core.io import atomic_write_text, make_dir, replace_dir

log = logging.getLogger("bertcls")

PARTIAL_SUFFIX = ".partial"
HISTORY_FILE = "metrics.jsonl"


def _config_has(path: Path, key: str) -> bool:
    try:
        return any(line.startswith(f"{key}:") for line in path.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        return False


# How each command recognises its own earlier output: the only non-empty directories it may replace.
RECOGNISE: dict[str, Callable[[Path], bool]] = {
    "train": lambda d: _config_has(d / "run_config.yaml", "label_column"),
    "pretrain": lambda d: _config_has(d / "run_config.yaml", "corpus"),
    "evaluate": lambda d: (d / "metrics.json").is_file() and (d / "misclassified.csv").is_file(),
    "export": lambda d: (d / "export_report.json").is_file(),
    "tokenizer": lambda d: (d / "tokenizer_train_config.yaml").is_file(),
    "explain": lambda d: (d / "explain_config.yaml").is_file() and (d / "explanations.jsonl").is_file(),
}


def _contains(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def check_output_dir(
    out: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool | None,
    inputs: Sequence[tuple[str, str | os.PathLike | None]] = (),
    flag: str = "--output-dir",
) -> None:
    """Refuse, with one line, an output directory that writing would destroy something in.

    ``overwrite`` is the command's --overwrite flag; ``None`` for commands without one (evaluate, export),
    whose earlier output of the same kind is derived data and is replaced. ``inputs`` are (flag, path)
    pairs that must survive: the output may neither be nor contain them.
    """
    out = Path(out)
    where = out.resolve()
    for name, path in inputs:
        if path is not None and Path(path).exists() and _contains(where, Path(path).resolve()):
            raise UserError(
                f"{flag}={out} would replace {name}={path}, an input of this command; choose another {flag}"
            )
    if _contains(where, Path.cwd().resolve()):
        raise UserError(f"{flag}={out} is the current directory (or contains it); choose a new directory")
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag}={out} is a file, not a directory; choose another {flag}")
    _check_writable(out, flag)
    if not out.exists() or not any(out.iterdir()):
        return
    if not RECOGNISE[kind](out):
        raise UserError(
            f"{flag}={out} is not empty and is not the output of an earlier 'bertcls {kind}'; bertcls never "
            f"deletes what it did not create: choose another {flag} (or empty it yourself)"
        )
    if overwrite is False:
        raise UserError(
            f"{flag}={out} holds an earlier 'bertcls {kind}' output; pass --overwrite to replace it "
            f"(it is kept until the new one is complete) or choose another {flag}"
        )


def _check_writable(out: Path, flag: str) -> None:
    """The new result is built beside ``out`` and renamed into place: its parent must be writable. Checked
    up front so that an hour of work does not end in a PermissionError."""
    anc = out.absolute().parent
    while not anc.exists():
        anc = anc.parent
    why = "is a file" if not anc.is_dir() else None
    if why is None and not os.access(anc, os.W_OK | os.X_OK):
        why = "is not writable"
    if why:
        raise UserError(f"{flag}={out}: cannot write there ({anc} {why}); choose a writable place")


# ---------------------------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunDir:
    """Where a long run lives: ``work`` while it runs, ``final`` once ``publish`` moved it there.

    ``work`` is ``final`` itself only when resuming a run interrupted before bertcls staged runs."""

    final: Path
    work: Path

    @property
    def checkpoint(self) -> Path:
        return self.work / "checkpoints" / "last"

    @property
    def best(self) -> Path:
        return self.work / "checkpoints" / "best"


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + PARTIAL_SUFFIX)


def locate_run(out: str | os.PathLike, resume: bool) -> RunDir:
    """The run directories for ``out``, from the file system alone, so every process of a data-parallel
    run finds the same. (``checkpoint.exists`` first repairs a checkpoint killed between its renames.)"""
    out = Path(out)
    stage = partial_dir(out)
    if resume and not checkpoint.exists(stage / "checkpoints" / "last"):
        if checkpoint.exists(out / "checkpoints" / "last"):  # a run from before staging, or kept checkpoints
            return RunDir(out, out)
        raise UserError(
            f"--output-dir={out}: no interrupted run to resume (expected {stage}/checkpoints/last); "
            f"check --output-dir or start without --resume"
        )
    return RunDir(out, stage)


def check_run_dir(
    run: RunDir, kind: str, overwrite: bool, resume: bool, inputs: Sequence[tuple[str, str | None]] = ()
) -> None:
    """Before any work: may this run write ``run.work`` and later replace ``run.final``?"""
    if run.work == run.final:
        return
    # A resumed run was given --overwrite consent (or found nothing to replace) when it started.
    check_output_dir(run.final, kind, overwrite=True if resume else overwrite, inputs=inputs)
    if not resume and run.work.exists():
        if checkpoint.exists(run.checkpoint) and not overwrite:
            raise UserError(
                f"{run.work} holds an interrupted 'bertcls {kind}' run; continue it with --resume, "
                f"pass --overwrite to start over, or choose another --output-dir"
            )
        # Without a checkpoint it is the remains of a killed start: ours to replace, if it is ours.
        check_output_dir(run.work, kind, overwrite=True, inputs=inputs)


def start_run(run: RunDir, resume: bool) -> None:
    """Create the working directory (a fresh run replaces a leftover interrupted run, checked above)."""
    if not resume and run.work.exists():
        shutil.rmtree(run.work)
    make_dir(run.work)


def publish(run: RunDir) -> None:
    """The run succeeded: move it into place, replacing the previous model only now."""
    if run.work != run.final:
        replace_dir(run.work, run.final)


def discard_failed(run: RunDir, resume: bool) -> None:
    """A run that failed before its first checkpoint leaves nothing behind; later it stays resumable."""
    if run.work == run.final or resume:
        return
    if checkpoint.exists(run.checkpoint):
        log.error("the run failed; its last checkpoint is kept in %s (continue with --resume)", run.work)
    else:
        shutil.rmtree(run.work, ignore_errors=True)


@contextlib.contextmanager
def session(run: RunDir, cfg, accelerator) -> Iterator[None]:
    """The life of a `train`/`pretrain` run directory around its loop: created (with the config that
    resumes it and train.log) once every rank has checked it, published if the block succeeds, removed if
    it fails before its first checkpoint, kept for --resume when interrupted."""
    from bertcls.core.config import save_yaml
    from bertcls.core.runtime import Interrupted, setup_logging

    main = accelerator.is_main_process
    accelerator.wait_for_everyone()
    if main:
        start_run(run, cfg.resume)
        save_yaml(run_config_for_resume(cfg, run.final), run.work / "run_config.yaml")
    accelerator.wait_for_everyone()
    setup_logging(run.work / "train.log", main)
    try:
        yield
    except Interrupted:
        raise
    except BaseException:
        if main:
            discard_failed(run, cfg.resume)
        raise
    if main:
        publish(run)
        log.info("model saved to %s", run.final)
    # Every rank leaves together and closes the process group. A rank that left while rank 0 was still
    # calibrating and publishing died in gloo's teardown at exit ("terminate called without an active
    # exception", SIGABRT; seen twice in CI under torchrun).
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1:
        accelerator.state.destroy_process_group()


def run_config_for_resume(cfg, out: Path):
    """The config saved in the run: what `--config run_config.yaml --resume` needs to continue it (the
    resolved output directory, without the run-control flags that would contradict --resume)."""
    return dataclasses.replace(cfg, output_dir=str(out), overwrite=False, resume=False)


def interrupted(verb: str, run: RunDir, step: int):
    from bertcls.core.runtime import Interrupted

    return Interrupted(
        f"interrupted at step {step}; checkpoint saved in {run.checkpoint}. "
        f"Continue with: bertcls {verb} --config {run.work}/run_config.yaml --resume"
    )


@contextlib.contextmanager
def restart_hint(verb: str, advice: str) -> Iterator[None]:
    """Ctrl-C in a command that runs train's loop but cannot continue as `train --resume` would (distill,
    prune, self-train: what they feed the loop lives only in their process): train's "--resume" advice
    is replaced with ``advice``."""
    from bertcls.core.runtime import Interrupted

    try:
        yield
    except Interrupted:
        raise Interrupted(f"{verb} interrupted; {advice}") from None


# ---------------------------------------------------------------------------------------------------- files
def write_history(path: Path, history: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(h) + "\n" for h in history))


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def restored_history(run: RunDir, step: int) -> list[dict]:
    """The log records as of the checkpoint (runs from before they travelled with it: metrics.jsonl,
    without the records of steps the resumed run replays)."""
    saved = checkpoint.load_history(run.checkpoint)
    if saved is not None:
        return saved
    return [h for h in read_history(run.work / HISTORY_FILE) if h["step"] <= step]


def param_groups(
    model, weight_decay: float, head_lr: float | None = None, head_prefix: str = "classifier."
) -> list[dict]:
    """AdamW groups: no decay on biases and LayerNorm; with ``head_lr``, the parameters under
    ``head_prefix`` (a new classification head) get their own learning rate. Tied parameters (MLM decoder =
    word embeddings) must be listed once (torch's optimizer refuses a parameter twice): ``named_parameters``
    yields each tensor once by default, and we rely on that rather than on a second bookkeeping of our own."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "LayerNorm" in name or name.endswith(".bias")
        head = head_lr is not None and name.startswith(head_prefix)
        groups.setdefault((head, no_decay), []).append(p)
    out = []
    for (head, no_decay), params in sorted(groups.items()):
        g = {"params": params, "weight_decay": 0.0 if no_decay else weight_decay}
        if head:
            g["lr"] = head_lr
        out.append(g)
    return out


def save_model_dir(model, tokenizer, out: Path, meta: tuple[str, dict] | None = None) -> None:
    """save_pretrained into a staging folder, then move the files in, so a crash leaves no half model.
    ``meta``: an extra (file name, JSON) the model directory carries (bertcls.json for classifiers)."""
    stage = out / ".model.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    model.save_pretrained(stage, safe_serialization=True)
    tokenizer.save_pretrained(stage)
    if meta is not None:
        name, data = meta
        (stage / name).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    for f in stage.iterdir():
        os.replace(f, out / f.name)
    stage.rmdir()


def save_checkpoint(
    accelerator, run_dir: RunDir, weights: dict, optimizer, scheduler, state: dict, rng: dict, history: list
) -> None:
    """The exact-resume checkpoint (weights, optimizer, schedule, RNG at the last optimizer step, the log
    history) and metrics.jsonl, written by the main process; every rank waits for it."""
    if accelerator.is_main_process:
        checkpoint.save(run_dir.checkpoint, weights, optimizer, scheduler, state, rng, history)
        write_history(run_dir.work / HISTORY_FILE, history)
    accelerator.wait_for_everyone()
