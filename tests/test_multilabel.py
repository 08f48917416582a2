"""Multi-label that learns (issue 18): empty label sets, a prior-initialised head, selection on tuned
thresholds, and the warnings for a model that learned only the base rates."""

from __future__ import annotations

import json

import numpy as np
from helpers import multilabel_rows, write_csv

from bertcls.cli import main
from bertcls.core import metrics
from bertcls.core.multilabel import (
    init_head_to_priors,
    label_priors,
    learning_checks,
    prior_logits,
    prior_predictor_scores,
)


def _train(tmp_path, tiny_bert, *extra: str) -> tuple[int, dict]:
    rows = multilabel_rows(300, seed=11)
    train = write_csv(tmp_path / "train.csv", rows[:240])
    dev = write_csv(tmp_path / "dev.csv", rows[240:])
    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_bert), "--train-file", str(train), "--validation-file", str(dev)]
    args += ["--multi-label", "--output-dir", str(out), "--batch-size", "16", "--max-length", "16", *extra]
    code = main(args)
    return code, json.loads((out / "metrics.json").read_text()) if code == 0 else {}


def test_rows_without_labels_load_and_train(tmp_path, tiny_bert, capsys):
    code, m = _train(tmp_path, tiny_bert, "--epochs", "3", "--learning-rate", "3e-3")
    assert code == 0
    rows = multilabel_rows(300, seed=11)[:240]
    empty = sum(1 for r in rows if not r["label"])
    assert empty > 20  # the data really has unlabelled rows
    assert m["train"]["n_train"] == 240  # none dropped
    assert m["train"]["n_train_without_label"] == empty
    assert m["validation"]["label_prior_predictor"]["f1_micro"] >= 0
    history = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [h for h in history if h["type"] == "eval"]
    # selection on F1 at tuned thresholds: it moves as the model learns (F1 at 0.5 can sit at 0 throughout)
    assert len(evals) == 3 and len({round(e["f1_micro"], 6) for e in evals}) > 1
    assert "ap_macro" in evals[0]
    assert m["validation"]["f1_micro"] > m["validation"]["label_prior_predictor"]["f1_micro"]


def test_prior_initialised_head_predicts_the_priors(tiny_bert):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=3, problem_type="multi_label_classification"
    )
    targets = [np.array(v, dtype=np.float32) for v in ([1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1])] * 5
    priors = label_priors(targets)
    np.testing.assert_allclose(priors, [0.75, 0.25, 0.25])
    assert init_head_to_priors(model, priors)
    np.testing.assert_allclose(model.classifier.bias.detach().numpy(), prior_logits(priors), rtol=1e-5)
    model.classifier.weight.data.zero_()  # isolate the bias: the output is then exactly the priors
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    with torch.no_grad():
        probs = torch.sigmoid(
            model(**tok(["good film", "bad plot"], return_tensors="pt", padding=True)).logits
        )
    np.testing.assert_allclose(probs.numpy(), np.tile(priors, (2, 1)), rtol=1e-5)
    assert not init_head_to_priors(model, np.array([0.5, 0.5]))  # wrong size: left alone


def test_base_rate_model_is_warned_about():
    y = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 0], [0, 1]])
    priors = np.array([0.5, 0.33])
    flat = np.tile(priors, (6, 1))  # a model that learned only the base rates
    thresholds = np.asarray(metrics.tune_thresholds(flat, y))
    model_m = metrics.multi_label(y, (flat >= thresholds).astype(int), ["a", "b"])
    prior_m, warnings = learning_checks(y, flat, priors, ["a", "b"], "f1_micro", model_m)
    assert prior_m["f1_micro"] == prior_predictor_scores(y, priors, ["a", "b"])["f1_micro"]
    assert len(warnings) == 1 and warnings[0].startswith("the model did not beat the label-prior predictor")
    good = np.where(y == 1, 0.9, 0.1)
    good_m = metrics.multi_label(y, (good >= 0.5).astype(int), ["a", "b"])
    assert learning_checks(y, good, priors, ["a", "b"], "f1_micro", good_m)[1] == []
    never = good.copy()
    never[:, 1] = 0.01
    warned = learning_checks(y, never, priors, ["a", "b"], "f1_micro", good_m)[1]
    assert any(
        "1 of 2 label(s) never reach probability 0.05" in w and w.endswith("more training") for w in warned
    )


def test_train_warns_when_only_base_rates_were_learned(tmp_path, tiny_bert, capsys):
    code, m = _train(tmp_path, tiny_bert, "--epochs", "1", "--learning-rate", "1e-9")
    assert code == 0
    out = capsys.readouterr().out
    assert "warning: the model did not beat the label-prior predictor on validation" in out
    assert m["validation"]["warnings"]


def test_head_gets_its_own_learning_rate(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    from bertcls.core import rundir
    from bertcls.train.config import TrainConfig

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    groups = rundir.param_groups(model, 0.01, head_lr=2e-3)
    head = {id(p) for n, p in model.named_parameters() if n.startswith("classifier.")}
    for g in groups:
        in_head = {id(p) in head for p in g["params"]}
        assert len(in_head) == 1  # a group is all head or all encoder
        assert g.get("lr") == (2e-3 if in_head == {True} else None)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert TrainConfig(train_file="x.csv", multi_label=True).head_lr_multiplier == 20
    assert TrainConfig(train_file="x.csv").head_lr_multiplier == 1
    assert TrainConfig(train_file="x.csv", multi_label=True, head_lr_multiplier=1).head_lr_multiplier == 1


def test_evaluate_multilabel_reports_unseen_labels_and_ranking_scores(tmp_path, tiny_bert, capsys):
    code, _ = _train(tmp_path, tiny_bert, "--epochs", "1")
    assert code == 0
    rows = multilabel_rows(40, seed=12)
    rows[0]["label"] = "sequel;film"
    rows[1]["label"] = "sequel"
    f = write_csv(tmp_path / "eval.csv", rows)
    ev = tmp_path / "ev"
    assert main(["evaluate", str(tmp_path / "run"), "--file", str(f), "--output-dir", str(ev)]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    assert m["unseen_labels"] == {"sequel": 2}
    assert 0 <= m["ap_macro"] <= 1 and set(m["per_label"]["film"]) >= {"ap", "roc_auc"}
    out = capsys.readouterr().out
    assert "labels the model never saw (counted as errors): {'sequel': 2}" in out
