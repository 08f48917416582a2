from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from bertcls.core.config import add_arguments, field_docs, resolve
from bertcls.core.errors import UserError
from bertcls.train.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def parse(argv):
    p = argparse.ArgumentParser()
    add_arguments(p, TrainConfig)
    return resolve(TrainConfig, p.parse_args(argv))


def test_precedence_defaults_yaml_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"train_file": "a.csv", "epochs": 5, "batch-size": 8}))
    cfg = parse(["--config", str(f), "--epochs", "7"])
    assert TrainConfig.__dataclass_fields__["epochs"].default not in (5, 7)
    assert cfg.epochs == 7  # flag beats file
    assert cfg.batch_size == 8 != TrainConfig.__dataclass_fields__["batch_size"].default  # file beats default
    assert cfg.train_file == "a.csv"
    assert cfg.learning_rate == TrainConfig.__dataclass_fields__["learning_rate"].default  # default kept


def test_unknown_yaml_key_is_error(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train_file: a.csv\nlearnig_rate: 0.1\n")
    with pytest.raises(
        UserError, match=rf"^{re.escape(str(f))}: unknown option 'learnig_rate'; valid options"
    ):
        parse(["--config", str(f)])


def test_non_utf8_yaml_is_one_line_error(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_bytes("train_file: a.csv\ntext_column: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(
        UserError, match=rf"^{re.escape(str(f))}: line 2: not valid UTF-8 .*; save the config"
    ):
        parse(["--config", str(f)])
    f.write_bytes("train_file: a.csv\ntext_column: caf\u00e9\n".encode("utf-8-sig"))  # a BOM is fine
    assert parse(["--config", str(f)]).text_column == "caf\u00e9"


@pytest.mark.parametrize("command", ["evaluate", "predict", "serve"])
def test_inference_commands_share_one_set_of_model_options(command):
    from bertcls.cli import COMMANDS, build_parser
    from bertcls.core.options import InferenceArgs

    cmd = next(c for c in COMMANDS if c.name == command)
    parser, cls = build_parser(cmd)
    assert issubclass(cls, InferenceArgs)
    assert "CPU threads for inference" in parser.format_help()
    data = [] if command == "serve" else ["--file", "a.csv"]
    with pytest.raises(UserError, match=r"--threads=0 is invalid"):
        resolve(cls, parser.parse_args(["m", "--threads", "0", *data]))
    with pytest.raises(UserError, match=r"--onnx-dir='x' is invalid: only used with --backend onnx"):
        resolve(cls, parser.parse_args(["m", "--onnx-dir", "x", *data]))
    assert (
        resolve(cls, parser.parse_args(["m", "--backend", "onnx", "--onnx-dir", "x", *data])).onnx_dir == "x"
    )


def test_bad_value_names_flag():
    with pytest.raises(UserError, match=r"--learning-rate=2\.0 is invalid"):
        parse(["--train-file", "a.csv", "--learning-rate", "2"])
    with pytest.raises(UserError, match=r"--epochs.*integer"):
        parse(["--train-file", "a.csv", "--epochs", "x"])
    with pytest.raises(UserError, match="exactly one of --train-file or --dataset"):
        parse([])


def test_every_field_has_a_docstring():
    docs = field_docs(TrainConfig)
    missing = [f for f in TrainConfig.__dataclass_fields__ if not docs.get(f)]
    assert not missing


SHIPPED = sorted((ROOT / "configs").glob("*/*.yaml"))


def test_configs_are_shipped():
    assert SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_configs_validate(path):
    """configs/<command>/*.yaml: every file is a valid config for that command."""
    from bertcls.cli import COMMANDS, build_parser

    data = yaml.safe_load(path.read_text())
    cmd = next(c for c in COMMANDS if c.name.replace(" ", "-") == path.parent.name)
    _, cls = build_parser(cmd)
    from bertcls.core.config import from_dict

    cfg = from_dict(cls, data, source=str(path))
    for key, value in data.items():  # every value in the file reached its field (YAML may spell 1e-4 as text)
        got = getattr(cfg, str(key).replace("-", "_"))
        assert got == value or (isinstance(got, float) and got == float(value)), (key, got, value)
