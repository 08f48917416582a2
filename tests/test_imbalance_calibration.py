"""Issue 16, imbalance and calibration: focal loss, class-weight mappings, the binary decision threshold
tuned on validation, ECE, temperature scaling folded into the model, and every backend applying them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import sentiment_rows, train_args, write_csv

from bertcls.cli import main
from bertcls.core import calibration, decision, losses
from bertcls.core.errors import UserError


# ---- focal loss ---------------------------------------------------------------------------------------
def test_focal_gamma_zero_is_cross_entropy_with_weights():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(32, 3, generator=g), torch.randint(0, 3, (32,), generator=g)
    w = torch.tensor([0.5, 2.0, 1.0])
    focal = losses.make_loss("focal", False, w, gamma=0.0)(logits, y)
    assert torch.allclose(focal, torch.nn.CrossEntropyLoss(weight=w)(logits, y), atol=1e-6)
    z, t = torch.randn(16, 4, generator=g), torch.randint(0, 2, (16, 4), generator=g).float()
    pos = torch.tensor([1.0, 3.0, 0.5, 2.0])
    focal = losses.make_loss("focal", True, pos, gamma=0.0)(z, t)
    assert torch.allclose(focal, torch.nn.BCEWithLogitsLoss(pos_weight=pos)(z, t), atol=1e-6)


def test_focal_loss_down_weights_easy_examples():
    easy = torch.tensor([[4.0, -4.0]])  # confidently right
    hard = torch.tensor([[0.1, 0.0]])  # barely right
    y = torch.tensor([0])
    ce = losses.make_loss("ce", False, None, 2.0)
    fl = losses.make_loss("focal", False, None, 2.0)
    # the easy example keeps a far smaller share of its cross-entropy than the hard one
    assert fl(easy, y) / ce(easy, y) < 0.01 < 0.2 < fl(hard, y) / ce(hard, y) < 1


# ---- class weights ------------------------------------------------------------------------------------
def test_class_weight_mapping_parses_and_refuses_bad_input():
    from bertcls.core.losses import parse_class_weights

    assert parse_class_weights("balanced") == "balanced"
    assert parse_class_weights("spam=5, ham=1") == {"spam": 5.0, "ham": 1.0}
    assert parse_class_weights("a=b=2") == {"a=b": 2.0}  # the last '=' splits: labels may contain '='
    for bad in ("spam", "spam=0", "spam=-1", "spam=x", "spam=1,spam=2", "=3"):
        with pytest.raises(UserError, match="--class-weights"):
            parse_class_weights(bad)


def test_train_refuses_unknown_class_weight_label_and_non_binary_options(
    tiny_bert, sentiment_files, tmp_path, capsys
):
    out = tmp_path / "run"
    assert main(train_args(tiny_bert, sentiment_files, out, "--class-weights", "spam=5")) == 2
    err = capsys.readouterr().err
    assert "--class-weights names ['spam']" in err and "Traceback" not in err
    assert main(train_args(tiny_bert, sentiment_files, out, "--positive-label", "neutral")) == 2
    assert "--positive-label='neutral' is not a label" in capsys.readouterr().err
    assert main(train_args(tiny_bert, sentiment_files, out, "--focal-gamma", "-1")) == 2
    assert "--focal-gamma" in capsys.readouterr().err
    assert not out.exists()


# ---- calibration --------------------------------------------------------------------------------------
def _calibrated_set(n=4000, seed=0):
    """Logits whose softmax is calibrated by construction (labels drawn from it)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(n, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    return logits, y


def test_ece_small_when_calibrated_large_when_over_confident():
    logits, y = _calibrated_set()
    soft = calibration.reliability(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), y, False)
    z = logits * 4
    hot = calibration.reliability(
        np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True),
        y,
        False,
    )
    assert soft["ece"] < 0.03 < 0.1 < hot["ece"]
    assert sum(b["n"] for b in soft["bins"]) == len(y)


def test_temperature_recovers_the_scale_and_lowers_nll():
    logits, y = _calibrated_set()
    t = calibration.fit_temperature(logits * 4, y, multi=False)
    assert 3.5 < t < 4.5
    assert calibration.nll(logits * 4 / t, y, False) < calibration.nll(logits * 4, y, False)
    rng = np.random.default_rng(1)  # multi-label: one temperature for every label
    z = rng.normal(0, 2, size=(3000, 4))
    ym = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(int)
    assert 0.4 < calibration.fit_temperature(z * 0.5, ym, multi=True) < 0.6


def test_bake_divides_the_logits(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2).eval()
    ids = torch.tensor([[2, 10, 11, 3]])
    before = model(input_ids=ids).logits
    calibration.bake(model, 2.5)
    assert torch.allclose(model(input_ids=ids).logits, before / 2.5, atol=1e-6)


# ---- decision threshold -------------------------------------------------------------------------------
def test_threshold_tuning_finds_the_better_cut_and_keeps_argmax_on_ties():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(int)  # 10% positives, scores shifted low
    score = np.clip(0.25 * y + rng.normal(0.2, 0.08, size=2000), 0, 1)
    probs = np.c_[1 - score, score]
    d = decision.tune(probs, y, positive=1, metric="f1_macro")
    assert d.threshold < 0.5
    f1 = decision._metric
    assert f1(y, d.predict_ids(probs), "f1_macro") > f1(y, probs.argmax(1), "f1_macro") + 0.05
    perfect = np.array([[0.9, 0.1], [0.1, 0.9]] * 10)
    assert decision.tune(perfect, np.array([0, 1] * 10), 1, "accuracy").threshold == 0.5
    assert decision.positive_class(["ham", "spam"], [0] * 9 + [1], None) == 1
    assert decision.positive_class(["fraud", "ok"], [1] * 9 + [0], None) == 0
    assert decision.positive_class(["a", "b"], [0, 1], "a") == 0


# ---- end to end on a tiny BERT ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imbalanced_run(tmp_path_factory, tiny_bert):
    """Binary, 1 positive in 6: focal loss, a weight mapping, temperature and a tuned threshold."""
    d = tmp_path_factory.mktemp("imbalanced")
    rows = [r for i, r in enumerate(sentiment_rows(700, seed=4)) if r["label"] == "negative" or i % 5 == 0]
    files = {
        "train": write_csv(d / "train.csv", rows[:300]),
        "dev": write_csv(d / "dev.csv", rows[300:360]),
        "test": write_csv(d / "test.csv", rows[360:420]),
    }
    out = d / "run"
    extra = ("--loss", "focal", "--class-weights", "positive=2", "--calibrate", "temperature")
    assert main(train_args(tiny_bert, files, out, *extra, "--tune-threshold", "--ensemble")) == 0
    return out, files


def test_run_saves_temperature_threshold_and_reports_them(imbalanced_run):
    out, _ = imbalanced_run
    meta = json.loads((out / "bertcls.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    assert meta["positive_label"] == "positive"  # the rarer class
    assert 0 < meta["decision_threshold"] < 1 and meta["temperature"] == m["calibration"]["temperature"]
    cal = m["calibration"]["validation"]
    assert cal["after"]["nll"] <= cal["before"]["nll"] + 1e-9
    assert {"ece", "pr_auc", "roc_auc"} <= set(m["test"]) and m["test"]["positive_label"] == "positive"
    assert m["validation"]["decision_threshold"] == meta["decision_threshold"]
    assert "threshold" in meta["ensemble"] and "decision_threshold" in m["ensemble"]
    for png in ("reliability.png", "pr_curve.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    log = (out / "train.log").read_text()
    assert "temperature" in log and "decision threshold for 'positive'" in log


def test_every_backend_applies_temperature_and_threshold(imbalanced_run):
    from transformers import pipeline

    from bertcls import TextClassifier

    out, files = imbalanced_run
    meta = json.loads((out / "bertcls.json").read_text())
    clf = TextClassifier.from_pretrained(out, ensemble=False)
    texts = [r.split(",")[0] for r in files["test"].read_text().splitlines()[1:]]
    probs = clf.predict_proba(texts)
    # the temperature lives in the weights: plain transformers gives the same calibrated probabilities
    hf = pipeline("text-classification", model=str(out), top_k=None)
    hf_p = np.array(
        [[d["score"] for d in sorted(row, key=lambda d: clf.labels.index(d["label"]))] for row in hf(texts)]
    )
    np.testing.assert_allclose(hf_p, probs, atol=1e-5)
    pos = clf.labels.index("positive")
    want = [clf.labels[pos] if p[pos] >= meta["decision_threshold"] else clf.labels[1 - pos] for p in probs]
    assert clf.predict(texts) == want
    # the ensemble uses its own threshold, tuned on the combined probabilities
    ens = TextClassifier.from_pretrained(out)
    assert ens.decision.threshold == meta["ensemble"]["threshold"]


def test_evaluate_reports_ece_pr_auc_and_pictures(imbalanced_run, tmp_path, capsys):
    out, files = imbalanced_run
    ev = tmp_path / "ev"
    assert (
        main(["evaluate", str(out), "--file", str(files["test"]), "--output-dir", str(ev), "--no-ensemble"])
        == 0
    )
    printed = capsys.readouterr().out
    m = json.loads((ev / "metrics.json").read_text())
    assert "ECE" in printed and "PR-AUC" in printed
    assert 0 <= m["ece"] <= 1 and 0 <= m["pr_auc"] <= 1
    assert m["decision_threshold"] == json.loads((out / "bertcls.json").read_text())["decision_threshold"]
    assert {"reliability.png", "pr_curve.png"} <= {p.name for p in ev.iterdir()}


def test_onnx_backend_applies_them_too(imbalanced_run, tmp_path):
    import shutil

    from bertcls import TextClassifier

    out, files = imbalanced_run
    model = tmp_path / "model"
    shutil.copytree(out, model)
    assert main(["export", str(model), "--format", "onnx"]) == 0
    texts = [r.split(",")[0] for r in files["test"].read_text().splitlines()[1:]]
    torch_clf = TextClassifier.from_pretrained(model, ensemble=False)
    onnx_clf = TextClassifier.from_pretrained(model, backend="onnx", ensemble=False)
    assert onnx_clf.decision == torch_clf.decision is not None
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), torch_clf.predict_proba(texts), atol=1e-4)
    assert onnx_clf.predict(texts) == torch_clf.predict(texts)
