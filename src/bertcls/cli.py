"""``bertcls``: a thin registry of command modules. Each command is (config dataclass, ``run(cfg)``).

The registry below is the one source of truth for the command list: top-level ``--help``, the
README's command table and the tests all read it. A command's module is imported only when that
command runs, so ``bertcls --help`` stays instant (no torch import).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from dataclasses import dataclass

from bertcls import __version__
from bertcls.core.errors import UserError


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    config: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command(
        "train", "bertcls.train.train", "TrainConfig", "fine-tune a BERT checkpoint for text classification"
    ),
    Command(
        "augment",
        "bertcls.train.augment",
        "AugmentConfig",
        "new training texts from a labelled file (EDA with offline synonyms, or MLM replacement)",
    ),
    Command(
        "self-train",
        "bertcls.train.self_train",
        "SelfTrainConfig",
        "label unlabelled texts with a trained model, round by round, and train on the surest",
    ),
    Command(
        "tune", "bertcls.train.tune", "TuneConfig", "search train hyperparameters (Optuna, SQLite study)"
    ),
    Command(
        "evaluate", "bertcls.train.evaluate", "EvaluateConfig", "score a trained model on a labelled file"
    ),
    Command("predict", "bertcls.deploy.predict", "PredictConfig", "label a file (or stdin lines), streaming"),
    Command(
        "tokenizer train",
        "bertcls.pretrain.tokenizer",
        "TokenizerConfig",
        "train a BERT WordPiece vocabulary",
    ),
    Command(
        "pretrain",
        "bertcls.pretrain.pretrain",
        "PretrainConfig",
        "pretrain BERT with MLM + NSP (from scratch or continued)",
    ),
    Command(
        "export", "bertcls.deploy.export", "ExportConfig", "export a trained model to ONNX (optionally int8)"
    ),
    Command("serve", "bertcls.deploy.serve", "ServeConfig", "serve a trained model over HTTP"),
    Command(
        "distill",
        "bertcls.compress.distill",
        "DistillConfig",
        "distil a trained classifier into a smaller BERT (soft targets + labels)",
    ),
    Command(
        "prune",
        "bertcls.compress.prune",
        "PruneConfig",
        "remove feed-forward neurons by importance, then recover (a smaller dense BERT)",
    ),
    Command(
        "compress report",
        "bertcls.compress.report",
        "CompressReportConfig",
        "score and time models in PyTorch, ONNX and ONNX int8; gate on the accuracy drop",
    ),
    Command(
        "explain",
        "bertcls.analysis.explain",
        "ExplainConfig",
        "show which words drove a prediction (Integrated Gradients, occlusion)",
    ),
)


def available() -> list[Command]:
    """Commands whose module ships in this build (lets the registry list planned verbs safely)."""
    return [c for c in COMMANDS if importlib.util.find_spec(c.module) is not None]


def top_help() -> str:
    cmds = available()
    width = max(len(c.name) for c in cmds)
    lines = [
        "usage: bertcls COMMAND [options]   (bertcls COMMAND --help for its options)",
        "",
        f"bertcls {__version__}: from raw text to a deployed BERT text classifier.",
        "",
        "commands:",
    ]
    lines += [f"  {c.name.ljust(width)}  {c.help}" for c in cmds]
    return "\n".join(lines)


def find_command(argv: list[str]) -> tuple[Command | None, list[str]]:
    for c in sorted(available(), key=lambda c: -len(c.name.split())):
        words = c.name.split()
        if argv[: len(words)] == words:
            return c, argv[len(words) :]
    return None, argv


def build_parser(cmd: Command) -> tuple[argparse.ArgumentParser, type]:
    from bertcls.core.config import add_arguments

    module = importlib.import_module(cmd.module)
    cls = getattr(module, cmd.config)
    parser = argparse.ArgumentParser(
        prog=f"bertcls {cmd.name}", description=(module.__doc__ or cmd.help).strip()
    )
    add_arguments(parser, cls)
    return parser, cls


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(top_help())
        return 0
    if argv[0] == "--version":
        print(f"bertcls {__version__}")
        return 0
    cmd, rest = find_command(argv)
    if cmd is None:
        names = ", ".join(c.name for c in available())
        print(f"bertcls: error: unknown command '{argv[0]}'; commands are: {names}", file=sys.stderr)
        return 2
    try:
        parser, cls = build_parser(cmd)
        ns = parser.parse_args(rest)
        from bertcls.core.config import resolve

        cfg = resolve(cls, ns)
        module = importlib.import_module(cmd.module)
        from bertcls.core.runtime import quiet_libraries

        quiet_libraries()
        result = module.run(cfg)
    except UserError as e:
        print(f"bertcls: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("bertcls: interrupted", file=sys.stderr)
        return 130
    summary = getattr(importlib.import_module(cmd.module), "summarize", None)
    text = summary(result) if summary else None
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
