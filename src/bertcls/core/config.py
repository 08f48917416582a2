"""Config dataclasses -> CLI flags and YAML files.

One dataclass per command. Precedence is: dataclass defaults < ``--config FILE.yaml`` < ``--flag`` values.
Field help comes from the attribute docstring written under each field (as litgpt/jsonargparse do), so
the documentation lives next to the default. Unknown keys in YAML are errors, and the resolved config is
written into every run directory with :func:`save_yaml`.

Hand-written rather than jsonargparse/simple-parsing: we need exactly this small subset (flat fields,
Optional/Literal/list[str]) and user-error messages that name the flag, which those libraries phrase
as tracebacks or their own formats.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from bertcls.core.errors import UserError

T = TypeVar("T")

POSITIONAL = "positional"


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings: the string literal written right under a dataclass field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # source unavailable (e.g. zipped install): help is just empty
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, name: str, source: str) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise a UserError naming the key."""
    base, optional = _unwrap_optional(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        raise UserError(f"{source}: '{name}' must not be empty")
    origin = get_origin(base)
    try:
        if origin is Literal:
            choices = get_args(base)
            if value not in choices:
                value = type(choices[0])(value)
            if value not in choices:
                raise ValueError
            return value
        if origin is list:
            (inner,) = get_args(base)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()] if value else []
            if not isinstance(value, (list, tuple)):
                raise ValueError
            if inner in (int, float):  # numbers: "--seeds 0,1,2" as well as "--seeds 0 1 2"
                value = [x for v in value for x in (v.split(",") if isinstance(v, str) else [v]) if x != ""]
            return [_coerce(v, inner, name, source) for v in value]
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    expected = _type_name(tp)
    raise UserError(f"{source}: '{name}' must be {expected}, got {value!r}")


def _type_name(tp: Any) -> str:
    base, optional = _unwrap_optional(tp)
    origin = get_origin(base)
    if origin is Literal:
        name = "one of " + ", ".join(repr(c) for c in get_args(base))
    elif origin is list:
        name = "a list"
    else:
        name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
            base, str(base)
        )
    return name + (" (or null)" if optional else "")


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field (positional fields stay positional); defaults are shown in help."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        default=argparse.SUPPRESS,
        help="YAML file of options (keys are the flag names with '_' or '-'); flags given here override it",
    )
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        base, _ = _unwrap_optional(tp)
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
            )
        )
        doc = docs.get(f.name, "")
        if f.metadata.get(POSITIONAL):
            nargs = "*" if get_origin(base) is list else ("?" if default is not None else None)
            parser.add_argument(f.name, help=doc, nargs=nargs, default=argparse.SUPPRESS)
            continue
        help_text = f"{doc} (default: {default})" if doc else f"(default: {default})"
        help_text = help_text.replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        elif get_origin(base) is list:
            parser.add_argument(flag(f.name), nargs="+", metavar=f.name.upper(), **kwargs)
        elif get_origin(base) is Literal:
            parser.add_argument(
                flag(f.name), metavar="{" + ",".join(map(str, get_args(base))) + "}", **kwargs
            )
        else:
            parser.add_argument(flag(f.name), metavar=f.name.upper(), **kwargs)


def from_dict(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Build a config from a mapping, rejecting unknown keys and coercing types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in names:
            raise UserError(
                f"{source}: unknown option '{key}'; valid options are: {', '.join(sorted(names))}"
            )
        kwargs[name] = _coerce(value, hints[name], flag(name) if source == "command line" else name, source)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in kwargs
    ]
    if missing:
        raise UserError(f"{source}: missing required option(s): {', '.join(flag(m) for m in missing)}")
    return cls(**kwargs)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found; check the --config path")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(
            f"{p}: line {line}: not valid UTF-8 ({raw[e.start : e.start + 4]!r}); save the config file as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{p}:{where}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: a config file must be a mapping of option: value")
    return data


def resolve(cls: type[T], namespace: argparse.Namespace) -> T:
    """defaults < YAML file < command-line flags."""
    given = dict(vars(namespace))
    merged: dict[str, Any] = {}
    config_path = given.pop("config", None)
    if config_path:
        merged.update({str(k).replace("-", "_"): v for k, v in load_yaml(config_path).items()})
        # Validate the file's keys on their own first, so the message names the file.
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        for key in merged:
            if key not in names:
                raise UserError(
                    f"{config_path}: unknown option '{key}'; valid options are: {', '.join(sorted(names))}"
                )
    merged.update(given)
    return from_dict(cls, merged, source="command line" if not config_path else f"{config_path} + flags")


def to_dict(cfg: Any) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.init}


def save_yaml(cfg: Any, path: str | os.PathLike) -> None:
    from bertcls.core.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))


def split_commas(values: list[str]) -> list[str]:
    """A list option of names given as "a,b" as well as "a b" (names never contain commas; paths may,
    so path lists are not split)."""
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def require(condition: bool, name: str, value: Any, expectation: str) -> None:
    """For ``__post_init__``: a failed check names the flag and the bad value."""
    if not condition:
        raise UserError(f"{flag(name)}={value!r} is invalid: {expectation}")


def check_resume(resume: bool, overwrite: bool, output_dir: str | None) -> None:
    """The --resume/--overwrite/--output-dir rules every command with a run directory shares."""
    require(not (resume and overwrite), "resume", resume, "--resume and --overwrite exclude each other")
    require(
        not resume or output_dir is not None,
        "resume",
        resume,
        "--resume needs --output-dir of the run to continue",
    )
