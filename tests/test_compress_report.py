"""`bertcls compress report`: every model in every runtime scored and timed side by side; the --max-drop
gate exits 1 when no compressed variant passes; the model directories are left as they were."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from bertcls.cli import main


def report_args(*models_then_files) -> list[str]:
    *models, files = models_then_files
    return ["compress", "report", *map(str, models), "--test-file", str(files["test"])]


@pytest.fixture
def worse_copy(trained_tiny, tmp_path):
    """The tiny model with its head zeroed: constant predictions, half the sentences wrong."""
    from safetensors.torch import load_file, save_file

    d = tmp_path / "worse"
    shutil.copytree(trained_tiny, d)
    w = load_file(str(d / "model.safetensors"))
    w = {k: (v * 0 if k.startswith("classifier.") else v) for k, v in w.items()}
    save_file(w, str(d / "model.safetensors"))
    return d


def test_report_table_picture_and_untouched_models(
    trained_tiny, worse_copy, sentiment_files, tmp_path, capsys
):
    before = sorted(p.name for p in trained_tiny.iterdir())
    out = tmp_path / "report"
    args = report_args(trained_tiny, worse_copy, sentiment_files)
    assert main([*args, "--runtimes", "torch,onnx-int8", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "texts/s" in printed and "onnx-int8" in printed
    rows = list(csv.DictReader(open(out / "report.csv")))
    assert [(r["model"], r["runtime"]) for r in rows] == [
        ("tiny", "torch"), ("tiny", "onnx-int8"), ("worse", "torch"), ("worse", "onnx-int8")
    ]  # fmt: skip
    assert float(rows[0]["drop_points"]) == 0 and float(rows[0]["speedup"]) == 1
    assert float(rows[2]["score"]) == 0.5 and float(rows[2]["drop_points"]) > 10  # constant predictions
    assert all(float(r["texts_per_s"]) > 0 and float(r["mb"]) > 0 for r in rows)
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "report.json").read_text())["reference"] == "tiny"
    assert sorted(p.name for p in trained_tiny.iterdir()) == before  # exports went into the report


def test_gate_exits_1_when_no_variant_passes(trained_tiny, worse_copy, sentiment_files, tmp_path, capsys):
    out = tmp_path / "report"
    args = report_args(trained_tiny, worse_copy, sentiment_files)
    assert main([*args, "--runtimes", "torch", "--max-drop", "1.0", "--output-dir", str(out)]) == 1
    captured = capsys.readouterr()
    assert "no compressed variant is within --max-drop 1.0 points of tiny" in captured.err
    assert "FAIL" in captured.out and (out / "report.csv").is_file()  # the report is still written
    assert main([*args, "--runtimes", "torch", "--max-drop", "60", "--output-dir", str(tmp_path / "r2")]) == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--runtimes", "tensorrt"], "--runtimes=['tensorrt'] is invalid"),
        (["--max-drop", "-1"], "--max-drop=-1.0 is invalid"),
    ],
)
def test_bad_report_options(trained_tiny, sentiment_files, tmp_path, capsys, extra, message):
    args = report_args(trained_tiny, sentiment_files)
    assert main([*args, *extra, "--output-dir", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "r").exists()
