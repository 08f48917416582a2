"""`bertcls train --cv K`: disjoint stratified folds that cover the data, per-fold and mean +- std metrics,
out-of-fold predictions of every row, an optional final model on all data, one-line errors."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from helpers import train_args

from bertcls.cli import main
from bertcls.core.data import TextData
from bertcls.train.cv import assign_folds


def test_single_label_folds_are_disjoint_stratified_and_cover():
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 9
    data = TextData([f"t{i}" for i in range(len(labels))], None, labels, list(range(2, 101)), "x.csv")
    fold = assign_folds(data, 3, seed=0, multi=False)
    assert sorted(Counter(fold.tolist())) == [0, 1, 2] and len(fold) == 99  # every row in exactly one fold
    for k in range(3):
        counts = Counter(lab for lab, f in zip(labels, fold) if f == k)
        assert counts == {"a": 20, "b": 10, "c": 3}
    assert (assign_folds(data, 3, seed=0, multi=False) == fold).all()  # seeded
    assert not (assign_folds(data, 3, seed=1, multi=False) == fold).all()


def test_multi_label_folds_use_iterative_stratification():
    rng = np.random.default_rng(0)
    names = ["joy", "anger", "fear", "rare"]
    rates = [0.5, 0.3, 0.2, 0.05]
    labels = [[n for n, r in zip(names, rates) if rng.random() < r] for _ in range(400)]
    data = TextData([f"t{i}" for i in range(400)], None, labels, list(range(2, 402)), "x.jsonl")
    fold = assign_folds(data, 4, seed=0, multi=True)
    total = Counter(lab for labs in labels for lab in labs)
    for k in range(4):
        inside = Counter(lab for labs, f in zip(labels, fold) if f == k for lab in labs)
        for n in names:  # each label's positives split evenly (within 2 of a quarter)
            assert abs(inside[n] - total[n] / 4) <= 2, (n, k, inside[n], total[n])


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, tiny_bert, sentiment_files):
    out = tmp_path_factory.mktemp("cv") / "run"
    assert (
        main(train_args(tiny_bert, sentiment_files, out, "--cv", "3", "--epochs", "1", "--no-baseline")) == 0
    )
    return out


def test_cv_summary_and_out_of_fold_predictions(cv_run, sentiment_files):
    s = json.loads((cv_run / "cv_summary.json").read_text())
    held = [
        json.loads((cv_run / "folds" / f"fold-{k}" / "metrics.json").read_text())["test"] for k in (1, 2, 3)
    ]
    for key in ("accuracy", "f1_macro"):
        v = np.array([h[key] for h in held])
        assert s["summary"][key]["mean"] == pytest.approx(v.mean())
        assert s["summary"][key]["std"] == pytest.approx(v.std(ddof=1))
    rows = list(csv.DictReader(open(cv_run / "oof_predictions.csv", encoding="utf-8")))
    assert len(rows) == 160 + 40  # train + validation file rows, each exactly once
    assert sum(h["n"] for h in held) == 200
    assert {r["fold"] for r in rows} == {"1", "2", "3"}
    assert all(abs(float(r["p_negative"]) + float(r["p_positive"]) - 1) < 1e-3 for r in rows)
    acc = np.mean([r["label"] == r["predicted"] for r in rows])
    assert s["oof"]["accuracy"] == pytest.approx(acc)
    assert not (cv_run / "model.safetensors").exists()  # no --cv-final: the folds are the result
    for k in (1, 2, 3):
        cfg = (cv_run / "folds" / f"fold-{k}" / "run_config.yaml").read_text()
        assert ".tmp" not in cfg and str(cv_run / "data" / f"fold-{k}" / "train.jsonl") in cfg


def test_cv_final_trains_a_model_on_all_data(tiny_bert, sentiment_files, tmp_path, capsys):
    from bertcls import TextClassifier

    out = tmp_path / "cvf"
    args = train_args(
        tiny_bert, sentiment_files, out, "--cv", "2", "--cv-final", "--epochs", "1", "--no-baseline"
    )
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2-fold cross-validation" in printed and f"final model on all data in {out}" in printed
    assert TextClassifier.from_pretrained(out).predict("good great") in ("positive", "negative")
    m = json.loads((out / "metrics.json").read_text())
    assert m["train"]["n_train"] == 160 and m["test"]["n"] == 40  # the given files, the test file scored
    assert "## 2-fold cross-validation" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--cv", "1"], "--cv=1 is invalid: K-fold needs K >= 2"),
        (["--cv", "500"], "has only 100 row(s) to split"),
        (["--cv", "3", "--seeds", "0,1"], "use --cv or --seeds, not both"),
        (["--cv-final"], "--cv-final=True is invalid: needs --cv K"),
    ],
)
def test_bad_cv_options_are_one_line_errors(tiny_bert, sentiment_files, tmp_path, capsys, flags, message):
    out = tmp_path / "bad"
    assert main(train_args(tiny_bert, sentiment_files, out, *flags)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []
