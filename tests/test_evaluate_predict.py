"""`bertcls evaluate` and `bertcls predict` on the shared tiny classifier."""

from __future__ import annotations

import csv
import io
import json
import sys

import numpy as np
from helpers import sentiment_rows, write_csv, write_jsonl

from bertcls.cli import main


def test_evaluate_writes_report_and_reports_unseen_labels(trained_tiny, tmp_path, capsys):
    rows = sentiment_rows(30, seed=9) + [{"text": "the plot was so so", "label": "neutral"}] * 3
    f = write_csv(tmp_path / "eval.csv", rows)
    out = tmp_path / "ev"
    assert main(["evaluate", str(trained_tiny), "--file", str(f), "--output-dir", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["unseen_labels"] == {"neutral": 3}
    assert {p.name for p in out.iterdir()} == {
        "metrics.json",
        "confusion_matrix.json",
        "confusion_matrix.png",
        "misclassified.csv",
    }
    m = json.loads((out / "metrics.json").read_text())
    assert m["per_class"]["neutral"]["recall"] == 0.0 and m["per_class"]["neutral"]["support"] == 3
    for k in ("accuracy", "f1_macro", "f1_micro", "f1_weighted", "precision_macro", "recall_weighted"):
        assert 0 <= m[k] <= 1
    cm = json.loads((out / "confusion_matrix.json").read_text())
    assert cm["labels"] == ["negative", "positive", "neutral"] and np.asarray(cm["matrix"]).sum() == 33
    wrong = list(csv.DictReader(open(out / "misclassified.csv", encoding="utf-8")))
    assert len(wrong) == m["n"] - round(m["accuracy"] * m["n"]) >= 3
    assert {"row", "text", "label", "predicted", "p_negative", "p_positive"} <= set(wrong[0])
    assert all(w["label"] != w["predicted"] for w in wrong)


def test_evaluate_rejects_base_model(tiny_bert, tmp_path, capsys):
    f = write_csv(tmp_path / "e.csv", sentiment_rows(4))
    assert main(["evaluate", str(tiny_bert), "--file", str(f)]) == 2
    assert "not a classifier" in capsys.readouterr().err


def test_predict_streams_in_input_order_csv_and_jsonl(trained_tiny, tmp_path):
    rows = [{"id": str(i), **r} for i, r in enumerate(sentiment_rows(50, seed=11))]
    f = write_csv(tmp_path / "in.csv", rows)
    out_csv, out_jsonl = tmp_path / "p.csv", tmp_path / "p.jsonl"
    assert (
        main(
            [
                "predict",
                str(trained_tiny),
                "--file",
                str(f),
                "--output",
                str(out_csv),
                "--chunk-size",
                "7",
                "--batch-size",
                "4",
                "--top-k",
                "2",
            ]
        )
        == 0
    )
    got = list(csv.DictReader(open(out_csv, encoding="utf-8")))
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    assert {"label", "score", "label_2", "score_2"} <= set(got[0])
    assert sum(g["label"] == r["label"] for g, r in zip(got, rows)) >= 45
    assert all(abs(float(g["score"]) + float(g["score_2"]) - 1) < 1e-4 for g in got)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    assert (
        main(["predict", str(trained_tiny), "--file", str(src), "--output", str(out_jsonl), "--top-k", "0"])
        == 0
    )
    recs = [json.loads(x) for x in out_jsonl.read_text().splitlines()]
    assert [r["label"] for r in recs] == [g["label"] for g in got]
    assert len(recs[0]["top_k"]) == 2


def test_predict_from_stdin(trained_tiny, monkeypatch, capsys):
    stdin = io.TextIOWrapper(io.BytesIO(b"great great film\nawful awful plot\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["predict", str(trained_tiny)]) == 0
    got = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [g["label"] for g in got] == ["positive", "negative"]


def test_predict_error_leaves_no_partial_output(trained_tiny, tmp_path, capsys):
    rows = sentiment_rows(20) + [{"text": " ", "label": "x"}]
    f = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "p.csv"
    assert (
        main(["predict", str(trained_tiny), "--file", str(f), "--output", str(out), "--chunk-size", "5"]) == 2
    )
    assert "line 22: empty text" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".p.csv*"))
    assert main(["predict", str(trained_tiny), "--file", str(f), "--output", str(out), "--skip-empty"]) == 0
    assert len(list(csv.DictReader(open(out, encoding="utf-8")))) == 20
