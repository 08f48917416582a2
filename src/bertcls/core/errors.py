"""User-facing errors: one line, names the place and the fix, exit code 2 on the CLI."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (file, column, flag, model directory).

    The CLI prints ``bertcls: error: <message>`` and exits with code 2, without a traceback.
    The message must say where the problem is and how to fix it.
    """


def check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)
