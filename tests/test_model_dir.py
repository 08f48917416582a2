"""A damaged model directory gives one line naming the file and the fix, in every command that loads it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import sentiment_rows, write_csv

from bertcls.cli import main
from bertcls.core.errors import UserError


@pytest.fixture
def damaged(trained_tiny, tmp_path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(trained_tiny, dst, ignore=shutil.ignore_patterns("onnx*", "eval-*"))
    return dst


def _commands(model: Path, data: Path, tmp: Path) -> list[list[str]]:
    return [
        ["evaluate", str(model), "--file", str(data), "--output-dir", str(tmp / "ev")],
        ["predict", str(model), "--file", str(data), "--output", str(tmp / "p.csv"), "--output-prefix", "p_"],
        ["export", str(model), "--output-dir", str(tmp / "onnx")],
        ["serve", str(model), "--port", "0"],
    ]


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_damaged_safetensors(damaged, tmp_path, capsys, how):
    from bertcls import TextClassifier

    weights = damaged / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"not a tensor file", "empty": b""}[how]
    )
    with pytest.raises(UserError, match=r"model\.safetensors: damaged or truncated \(.*\); copy the model"):
        TextClassifier.from_pretrained(damaged)
    csv_file = write_csv(tmp_path / "d.csv", sentiment_rows(4))
    for argv in _commands(damaged, csv_file, tmp_path):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "model.safetensors: damaged or truncated" in err and "Traceback" not in err, argv


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"labels": ["negative", "positive"', r"bertcls\.json: line 1: not valid JSON"),
        (b"\xff\xfe{}", r"bertcls\.json: not UTF-8 text"),
        (b'["negative", "positive"]', r"bertcls\.json: expected a JSON object"),
        (b'{"labels": "negative"}', r"bertcls\.json: 'labels' must be a non-empty list"),
    ],
)
def test_damaged_meta_file(damaged, tmp_path, capsys, content, message):
    from bertcls import TextClassifier

    (damaged / "bertcls.json").write_bytes(content)
    with pytest.raises(UserError, match=message + r".*; the model directory is damaged"):
        TextClassifier.from_pretrained(damaged)
    csv_file = write_csv(tmp_path / "d.csv", sentiment_rows(4))
    assert main(_commands(damaged, csv_file, tmp_path)[1]) == 2
    assert "bertcls.json" in capsys.readouterr().err
