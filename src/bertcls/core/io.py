"""Atomic file writes and directory swaps: outputs appear complete or not at all, and nothing is deleted
before its replacement is in place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bertcls.core.errors import UserError


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO]:
    """Write to a temp file in the same directory, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with open(tmp, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def make_dir(path: str | os.PathLike, flag: str = "--output-dir") -> Path:
    """mkdir -p that turns a read-only or otherwise unwritable place into a one-line user error."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{flag}={path}: cannot create it ({e.strerror}); choose a writable place") from None
    return path


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished directory ``new`` to ``target``. A previous ``target`` is renamed aside first and
    removed only once ``new`` is in place, so a crash at any point keeps one complete copy."""
    new, target = Path(new), Path(target)
    aside = None
    if target.exists():
        # mkdtemp gives a unique empty name; renaming a directory onto an empty one is allowed on POSIX.
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, aside)
    try:
        os.replace(new, target)
    except BaseException:
        if aside is not None:
            os.replace(aside, target)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike, flag: str = "--output-dir") -> Iterator[Path]:
    """Build a directory under a temp name beside ``path`` and swap it in only if the block succeeds.

    Callers decide beforehand whether an existing ``path`` may be replaced (``bertcls.core.rundir``)."""
    path = Path(path)
    make_dir(path.parent, flag)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise UserError(
            f"{flag}={path}: cannot write there ({e.strerror}); choose a writable place"
        ) from None
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
