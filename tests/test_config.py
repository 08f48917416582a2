from __future__ import annotations

import argparse
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
    assert cfg.epochs == 7  # flag beats file
    assert cfg.batch_size == 8  # file beats default
    assert cfg.learning_rate == TrainConfig.__dataclass_fields__["learning_rate"].default


def test_unknown_yaml_key_is_error(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train_file: a.csv\nlearnig_rate: 0.1\n")
    with pytest.raises(UserError, match=r"unknown option 'learnig_rate'"):
        parse(["--config", str(f)])


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
    assert cfg is not None
