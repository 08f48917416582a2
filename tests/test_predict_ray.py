"""`bertcls predict --engine ray`: the local engine's rows from Ray Data actors (a local 2-worker Ray),
a shard directory that appears only when complete, and one-line errors from the driver and the workers."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
from helpers import sentiment_rows, write_csv

from bertcls.cli import main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="pip install 'bertcls[ray]'")


def shards(d, suffix=".csv"):
    rows = []
    for f in sorted(d.glob(f"*{suffix}")):  # Ray names shards in input order
        with open(f, encoding="utf-8") as fh:
            rows += list(csv.DictReader(fh)) if suffix == ".csv" else [json.loads(x) for x in fh]
    return rows


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_ray_engine_writes_the_local_engines_rows_in_order(trained_tiny, tmp_path, capsys, backend):
    """Same rows, same order; with the int8 export the scores are identical, not just close (regression:
    int8 scores depended on how the rows were cut into batches, and 1% of SST-2 labels differed)."""
    model = trained_tiny
    extra = []
    if backend == "onnx-int8":
        import shutil

        model = tmp_path / "model"
        shutil.copytree(trained_tiny, model)  # the export goes inside the model directory
        assert main(["export", str(model), "--quantize", "int8"]) == 0
        extra = ["--backend", "onnx", "--onnx-dir", "onnx-int8"]
    rows = [
        {"id": str(i), "text": r["text"], "label": r["label"]} for i, r in enumerate(sentiment_rows(60, 5))
    ]
    f = write_csv(tmp_path / "in.csv", rows)
    local = tmp_path / "local.csv"
    assert (
        main(["predict", str(model), "--file", str(f), "--output", str(local), "--top-k", "2", *extra]) == 0
    )
    out = tmp_path / "out"
    args = ["predict", str(model), "--file", str(f), "--output", str(out), "--top-k", "2", *extra]
    # the command's own local Ray (no RAY_ADDRESS), two actors, small batches so both get work
    assert main(args + ["--engine", "ray", "--num-workers", "2", "--chunk-size", "8"]) == 0
    assert "(2 Ray worker(s), " in capsys.readouterr().out
    want = list(csv.DictReader(open(local, encoding="utf-8")))
    got = shards(out)
    assert [g["id"] for g in got] == [str(i) for i in range(60)]
    assert list(got[0]) == list(want[0])  # same columns: input kept, predictions as pred_* beside 'label'
    assert [g["pred_label"] for g in got] == [w["pred_label"] for w in want]
    assert [g["pred_label_2"] for g in got] == [w["pred_label_2"] for w in want]
    assert max(abs(float(g["pred_score"]) - float(w["pred_score"])) for g, w in zip(got, want)) < 1e-4
    if backend == "onnx-int8":
        assert [g["pred_score"] for g in got] == [w["pred_score"] for w in want]
    assert not (tmp_path / "out.partial").exists()
    # an existing output directory is refused, not replaced
    assert main(args + ["--engine", "ray"]) == 2
    assert "already exists; choose a new --output" in capsys.readouterr().err
    assert len(shards(out)) == 60


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_ray_engine_worker_errors_are_one_line_and_leave_no_output(trained_tiny, tmp_path, local_ray, capsys):
    rows = [{"text": r["text"]} for r in sentiment_rows(10)] + [{"text": ""}]
    f = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out"
    base = ["predict", str(trained_tiny), "--file", str(f), "--engine", "ray", "--num-workers", "1"]
    assert main(base + ["--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"bertcls: error: {f}: row 11 of a Ray batch (--engine local names the file's line): empty"
    )
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    # --skip-empty drops it; a directory of files in; JSONL out
    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "a.csv", rows)
    write_csv(d / "b.csv", [{"text": "great great"}])
    args = [*base[:3], str(d), *base[4:]]
    assert main(args + ["--output", str(out), "--skip-empty", "--format", "jsonl"]) == 0
    got = shards(out, ".json")
    assert len(got) == 11 and [r["label"] for r in got[:2]] == ["positive", "negative"]
    assert sorted(r["text"] for r in got) == sorted([r["text"] for r in rows[:10]] + ["great great"])
    # a column the file lacks: the usual message, before any prediction
    assert main(base + ["--output", str(tmp_path / "o2"), "--text-column", "body"]) == 2
    assert "body" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--output", "x"], "--engine ray reads files, not stdin"),
        (["--file", "f.csv"], "--engine ray writes a directory: give --output DIR"),
        # checked before Ray starts
        (["--file", "f.csv", "--output", "o", "--encoding", "gbk"], "--engine ray reads UTF-8 only"),
    ],
)
def test_ray_engine_flag_errors(trained_tiny, extra, message, capsys):
    assert main(["predict", str(trained_tiny), "--engine", "ray", *extra]) == 2
    assert message in capsys.readouterr().err


def test_local_engine_refuses_ray_only_flags(trained_tiny, capsys):
    assert main(["predict", str(trained_tiny), "--num-workers", "2"]) == 2
    assert "is for --engine ray" in capsys.readouterr().err
    assert main(["predict", str(trained_tiny), "--format", "parquet"]) == 2
    assert "parquet output needs --engine ray" in capsys.readouterr().err
