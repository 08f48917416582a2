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
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["split", "rows", "accuracy", "macro-F1", "loss", "PR-AUC", "ECE"]
    assert printed[1].split()[:2] == ["evaluated", "33"]
    assert printed[2] == "labels the model never saw (counted as errors): {'neutral': 3}"
    assert printed[3].endswith(
        f"misclassified ({out / 'misclassified.csv'}); all metrics: {out / 'metrics.json'}"
    )
    assert len(printed) == 4  # a short summary, not a JSON dump
    assert {p.name for p in out.iterdir()} == {
        "metrics.json",
        "confusion_matrix.json",
        "confusion_matrix.png",
        "misclassified.csv",
        "reliability.png",
        "pr_curve.png",
    }
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["ece"] <= 1 and 0 <= m["pr_auc"] <= 1  # over the 30 rows with a label the model knows
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
    rows = [
        {"id": str(i), "text": r["text"], "gold": r["label"]}
        for i, r in enumerate(sentiment_rows(50, seed=11))
    ]
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
    assert sum(g["label"] == r["gold"] for g, r in zip(got, rows)) >= 45
    assert [g["gold"] for g in got] == [r["gold"] for r in rows]
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
    rows = [{"text": r["text"]} for r in sentiment_rows(20)] + [{"text": " "}]
    f = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "p.csv"
    assert (
        main(["predict", str(trained_tiny), "--file", str(f), "--output", str(out), "--chunk-size", "5"]) == 2
    )
    assert "line 22: empty text" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".p.csv*"))
    assert main(["predict", str(trained_tiny), "--file", str(f), "--output", str(out), "--skip-empty"]) == 0
    assert len(list(csv.DictReader(open(out, encoding="utf-8")))) == 20


def test_predict_keeps_input_columns_named_like_predictions(trained_tiny, tmp_path, capsys):
    rows = [{"text": r["text"], "label": r["label"], "score": "7"} for r in sentiment_rows(6, seed=4)]
    f = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "p.csv"
    # default: a labelled file predicts without a flag; the predictions move to pred_*, said on stderr
    assert main(["predict", str(trained_tiny), "--file", str(f), "--output", str(out), "--top-k", "2"]) == 0
    err = capsys.readouterr().err
    assert f"bertcls: warning: {f}: input column 'label' is kept; the predictions go to 'pred_label'" in err
    got = list(csv.DictReader(open(out, encoding="utf-8")))
    assert list(got[0]) == [
        "text",
        "label",
        "score",
        "pred_label",
        "pred_score",
        "pred_label_2",
        "pred_score_2",
    ]
    assert [g["label"] for g in got] == [r["label"] for r in rows]  # the input's labels, untouched
    assert all(g["score"] == "7" for g in got)
    assert {g["pred_label"] for g in got} <= {"positive", "negative"}
    # an explicit prefix that still clashes is refused, and nothing is written
    out.unlink()
    args = ["predict", str(trained_tiny), "--file", str(f), "--output", str(out), "--output-prefix", ""]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"bertcls: error: {f}: input column 'label' has the name of a prediction column; " in err
    assert "Traceback" not in err and not out.exists()
    # --top-k 2 adds label_2/score_2: a clash there moves the predictions too
    g = write_csv(tmp_path / "in2.csv", [{"text": "good", "label_2": "x"}])
    assert main(["predict", str(trained_tiny), "--file", str(g), "--top-k", "2", "--output", str(out)]) == 0
    assert list(next(csv.DictReader(open(out, encoding="utf-8")))) == [
        "text",
        "label_2",
        "pred_label",
        "pred_score",
        "pred_label_2",
        "pred_score_2",
    ]


def test_predict_jsonl_clash_in_a_later_row_names_the_line(trained_tiny, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "good film"}, {"text": "bad", "top_k": 3}])
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(trained_tiny), "--file", str(src), "--output", str(out), "--top-k", "2"]) == 2
    assert f"{src}: line 2: input column 'top_k'" in capsys.readouterr().err
    assert not out.exists()


def test_predict_jsonl_to_csv_keeps_keys_of_later_rows(trained_tiny, tmp_path):
    recs = [
        {"text": "great great film", "id": 1},
        {"text": "awful awful plot", "id": 2, "source": "web", "tags": ["a", "b"]},
        {"text": "nice nice story", "lang": "en"},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    out = tmp_path / "p.csv"
    args = ["predict", str(trained_tiny), "--file", str(src), "--output", str(out), "--chunk-size", "1"]
    assert main(args) == 0
    got = list(csv.DictReader(open(out, encoding="utf-8")))
    assert list(got[0]) == ["text", "id", "source", "tags", "lang", "label", "score"]
    assert [g["source"] for g in got] == ["", "web", ""] and got[2]["lang"] == "en"
    assert json.loads(got[1]["tags"]) == ["a", "b"] and got[2]["id"] == ""
    assert [g["label"] for g in got] == ["positive", "negative", "positive"]
    assert not list(tmp_path.glob(".p.csv*"))


def test_predict_refuses_lone_surrogate_with_line(trained_tiny, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "good"}\n{"text": "bad \\udc00 film"}\n')
    assert main(["predict", str(trained_tiny), "--file", str(src), "--output", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{src}: line 2: field 'text' contains a lone surrogate" in err and "Traceback" not in err


def test_evaluate_refuses_nan_labels_unless_told(trained_tiny, tmp_path, capsys):
    rows = sentiment_rows(8, seed=5) + [{"text": "great film", "label": "NaN"}]
    f = write_csv(tmp_path / "e.csv", rows)
    assert main(["evaluate", str(trained_tiny), "--file", str(f), "--output-dir", str(tmp_path / "a")]) == 2
    assert "line 10" in capsys.readouterr().err
    args = ["evaluate", str(trained_tiny), "--file", str(f), "--output-dir", str(tmp_path / "b")]
    assert main(args + ["--missing-labels", "skip"]) == 0
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["n"] == 8
