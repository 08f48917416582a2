"""`bertcls train --method setfit` (issue 15): a few-shot run on a handful of texts is a standard run
directory that TextClassifier, evaluate and export read; the saved model equals setfit's (the encoder's
sentence-transformers embedding and the logistic regression as one linear layer); one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from helpers import multilabel_rows, sentiment_rows, write_csv

from bertcls.cli import main

SETFIT = ["--method", "setfit", "--max-length", "32", "--setfit-learning-rate", "1e-3"]
SETFIT += ["--setfit-iterations", "5", "--no-baseline"]


@pytest.fixture(scope="module")
def few(tmp_path_factory):
    d = tmp_path_factory.mktemp("few")
    return {
        "train": write_csv(d / "train.csv", sentiment_rows(48, seed=1)),  # every sentiment word seen
        "dev": write_csv(d / "dev.csv", sentiment_rows(40, seed=2)),
        "test": write_csv(d / "test.csv", sentiment_rows(40, seed=3)),
    }


def setfit_args(model, files, out, *extra) -> list[str]:
    return ["train", "--model", str(model), "--train-file", str(files["train"]), "--validation-file",
            str(files["dev"]), "--test-file", str(files["test"]), "--output-dir", str(out), *SETFIT, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def setfit_run(tmp_path_factory, tiny_bert, few):
    out = tmp_path_factory.mktemp("runs") / "setfit"
    assert main(setfit_args(tiny_bert, few, out)) == 0
    return out


def test_setfit_run_is_a_standard_run_directory(setfit_run, few):
    from bertcls import TextClassifier

    for f in (
        "metrics.json",
        "README.md",
        "run_config.yaml",
        "bertcls.json",
        "head.safetensors",
        "modules.json",
    ):
        assert (setfit_run / f).is_file(), f
    assert not (setfit_run / "setfit").exists()  # setfit's checkpoint folder is cleaned up
    # regression: train.log had one line for the whole contrastive phase (tens of minutes on real data)
    assert re.search(r"setfit step \d+/\d+: contrastive loss \d", (setfit_run / "train.log").read_text())
    meta = json.loads((setfit_run / "bertcls.json").read_text())
    assert meta["architecture"] == "sentence" and meta["pooling"] == "mean"
    assert meta["labels"] == ["negative", "positive"]
    m = json.loads((setfit_run / "metrics.json").read_text())
    assert m["train"]["method"] == "setfit" and m["train"]["n_train"] == 48 and "accuracy" in m["test"]
    clf = TextClassifier.from_pretrained(setfit_run)
    assert clf.predict("the film was great great") in ("positive", "negative")  # one in, one out
    preds = clf.predict(["a great lovely film", "an awful dull film"])
    assert preds == ["positive", "negative"]
    assert m["test"]["accuracy"] >= 0.85  # it learned the task
    top = clf.explain("a great lovely film").top(2)  # Integrated Gradients through the mean pooling
    assert {w for w, _ in top} & {"great", "lovely"}, top
    # the encoder's config must not name the labels: plain transformers would load a random head under them
    assert "positive" not in (setfit_run / "config.json").read_text()


def test_saved_model_is_the_sentence_transformer_and_its_regression(setfit_run):
    """The directory loads in sentence-transformers as the trained encoder: our module's embedding equals
    SentenceTransformer.encode, so the head sees exactly what setfit's regression was fitted on."""
    from sentence_transformers import SentenceTransformer

    from bertcls import TextClassifier

    texts = ["the film was great", "boring plot and awful acting", "a story"]
    st = SentenceTransformer(str(setfit_run), device="cpu")
    expected = st.encode(texts, convert_to_numpy=True)
    clf = TextClassifier.from_pretrained(setfit_run)
    batch = clf.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = clf.model.embed(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_head_from_sklearn_equals_predict_proba(kind):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from bertcls.core.sentence_model import head_from_sklearn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    if kind == "multilabel":
        y = (x[:, :3] > 0).astype(int)
        est = OneVsRestClassifier(LogisticRegression()).fit(x, y)
        n, act = 3, torch.sigmoid
    else:
        n = 2 if kind == "binary" else 4
        y = np.arange(60) % n
        est = LogisticRegression(max_iter=500).fit(x, y)
        act = lambda z: torch.softmax(z, dim=1)  # noqa: E731
    with torch.no_grad():
        ours = act(head_from_sklearn(est, n)(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(ours, est.predict_proba(x), atol=1e-5)


def test_evaluate_and_onnx_export_read_a_setfit_run(setfit_run, few, tmp_path, capsys):
    from bertcls import TextClassifier

    assert (
        main(
            [
                "evaluate",
                str(setfit_run),
                "--file",
                str(few["test"]),
                "--output-dir",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    m = json.loads((setfit_run / "metrics.json").read_text())["test"]
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert abs(ev["accuracy"] - m["accuracy"]) < 1e-9
    assert main(["export", str(setfit_run)]) == 0  # parity-checked against torch, or it fails
    report = json.loads((setfit_run / "onnx" / "export_report.json").read_text())
    assert report["optimizer"]["fused"].get(
        "Attention"
    )  # traced with eager attention, like a BERT classifier
    texts = [r["text"] for r in sentiment_rows(20, seed=9)]
    torch_p = TextClassifier.from_pretrained(setfit_run).predict_proba(texts)
    onnx_p = TextClassifier.from_pretrained(setfit_run, backend="onnx").predict_proba(texts)
    np.testing.assert_allclose(np.asarray(onnx_p), np.asarray(torch_p), atol=1e-4)


def test_multilabel_setfit(tmp_path, tiny_bert):
    from bertcls import TextClassifier

    rows = multilabel_rows(60, seed=4)
    files = {"train": write_csv(tmp_path / "t.csv", rows[:24]), "dev": write_csv(tmp_path / "d.csv", rows[24:44]),
             "test": write_csv(tmp_path / "e.csv", rows[44:])}  # fmt: skip
    out = tmp_path / "ml"
    assert main(setfit_args(tiny_bert, files, out, "--multi-label")) == 0
    meta = json.loads((out / "bertcls.json").read_text())
    assert meta["task"] == "multi_label" and len(meta["thresholds"]) == 2
    assert isinstance(TextClassifier.from_pretrained(out).predict("a good film"), list)


@pytest.mark.parametrize("multitarget", [False, True])
def test_head_from_setfit_equals_its_probabilities(multitarget):
    """setfit's differentiable head divides its logits by temperature + eps; the folded linear layer
    must give the same probabilities (softmax, or sigmoid per label)."""
    from setfit.modeling import SetFitHead

    from bertcls.core.sentence_model import head_as_linear

    torch.manual_seed(0)
    head = SetFitHead(in_features=8, out_features=3, temperature=0.5, multitarget=multitarget)
    x = torch.randn(20, 8)
    with torch.no_grad():
        _, expected = head(x)
        logits = head_as_linear(head, 3)(x)
    ours = torch.sigmoid(logits) if multitarget else torch.softmax(logits, dim=1)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("multi_label", [False, True])
def test_end_to_end_head_trains_the_encoder_and_saves_a_standard_run(tmp_path, tiny_bert, few, multi_label):
    """--setfit-head end-to-end: after the contrastive phase setfit trains its linear head and the encoder
    together; the run is a standard directory, and its encoder differs from the logistic-head run of the
    same seed (the head phase moved it), single- and multi-label."""
    from bertcls import TextClassifier

    files = few
    if multi_label:
        rows = multilabel_rows(60, seed=4)
        files = {"train": write_csv(tmp_path / "t.csv", rows[:24]), "dev": write_csv(tmp_path / "d.csv", rows[24:44]),
                 "test": write_csv(tmp_path / "e.csv", rows[44:])}  # fmt: skip
    extra = ["--multi-label"] if multi_label else []
    runs = {}
    for head in ("logistic", "end-to-end"):
        out = tmp_path / head
        head_epochs = ["--setfit-head-epochs", "3"] if head == "end-to-end" else []  # else refused
        args = setfit_args(tiny_bert, files, out, "--setfit-head", head, *head_epochs, *extra)
        assert main(args) == 0
        runs[head] = TextClassifier.from_pretrained(out)
    assert "end-to-end head fitted on" in (tmp_path / "end-to-end" / "train.log").read_text()
    a, b = (dict(runs[h].model.encoder.named_parameters()) for h in ("logistic", "end-to-end"))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    clf = runs["end-to-end"]
    if multi_label:
        assert isinstance(clf.predict("a good film"), list)
    else:
        assert clf.predict(["a great lovely film", "an awful dull film"]) == ["positive", "negative"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--text-pair-column", "b"], "--text-pair-column='b' is invalid: not with --method setfit"),
        (["--loss", "focal"], "--loss='focal' is invalid: not with --method setfit"),
        (["--setfit-iterations", "0"], "--setfit-iterations=0 is invalid: must be >= 1"),
        (["--long-text", "chunks"], "not with --method setfit: setfit reads the first --max-length tokens"),
        (["--setfit-head", "end-to-end", "--class-weights", "balanced"], "--setfit-head end-to-end, whose"),
        (["--setfit-head", "svm"], "'--setfit-head' must be one of 'logistic', 'end-to-end', got 'svm'"),
        (["--setfit-head-epochs", "0"], "--setfit-head-epochs=0 is invalid: must be >= 1"),
        # regression: head-phase options with the logistic head were silently ignored
        (
            ["--setfit-head-epochs", "4"],
            "--setfit-head-epochs=4 is invalid: only with --setfit-head end-to-end",
        ),
        (["--setfit-head-learning-rate", "0.1"], "--setfit-head-learning-rate=0.1 is invalid: only with"),
    ],
)
def test_bad_setfit_options(tiny_bert, few, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(setfit_args(tiny_bert, few, out, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--setfit-epochs", "2"], "--setfit-epochs=2 is invalid: only with --method setfit"),
        (["--setfit-head", "end-to-end"], "--setfit-head='end-to-end' is invalid: only with --method setfit"),
    ],
)
def test_setfit_options_without_setfit_are_refused(tiny_bert, few, tmp_path, capsys, extra, message):
    """Regression: SetFit's options on a fine-tuning run were silently ignored."""
    out = tmp_path / "bad"
    args = ["train", "--model", str(tiny_bert), "--train-file", str(few["train"]), "--output-dir", str(out)]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_setfit_pairs_default_to_the_papers_20_per_text():
    """20 pairs per text beat the library's oversampling by 3.7 points at 8 per class on SST-2 (README
    "Few-shot"); `none` still selects the oversampling."""
    from bertcls.core.config import from_dict
    from bertcls.train.config import TrainConfig

    assert TrainConfig(train_file="t.csv").setfit_iterations == 20
    cfg = from_dict(
        TrainConfig, {"train_file": "t.csv", "method": "setfit", "setfit_iterations": "none"}, source="test"
    )
    assert cfg.setfit_iterations is None


def test_precision_can_change_within_one_process():
    """Regression: accelerate keeps one precision per process, so a setfit run (fp32) after a bf16 `train`
    in the same Python session failed with "AcceleratorState has already been initialized"."""
    from bertcls.core.runtime import make_accelerator

    assert make_accelerator("bf16").mixed_precision == "bf16"
    assert make_accelerator("no").mixed_precision == "no"
    assert make_accelerator("bf16").mixed_precision == "bf16"


def test_distill_takes_a_setfit_teacher_and_text_only_unlabelled_rows(setfit_run, few, tmp_path, monkeypatch):
    """Regressions: distill loaded a SetFit run as a sequence-classification model, i.e. its encoder under
    a new random head, so the soft targets were noise; and an unlabelled CSV without a label column was
    refused. Now the soft targets are the SetFit model's own logits and the student starts from its
    encoder's layers."""
    from transformers import AutoModelForSequenceClassification

    from bertcls import TextClassifier
    from bertcls.compress import distill

    seen = {}
    annotate = distill.Distillation.annotate

    def spy(self, enc_train, tokenizer, labels):
        seen["rows"] = annotate(self, enc_train, tokenizer, labels)
        return seen["rows"]

    monkeypatch.setattr(distill.Distillation, "annotate", spy)
    unlabelled = [{"text": r["text"]} for r in sentiment_rows(30, seed=9)]
    unl = write_csv(tmp_path / "unl.csv", unlabelled, ["text"])
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(setfit_run), "--train-file", str(few["train"]), "--unlabeled-file",
            str(unl), "--validation-file", str(few["dev"]), "--test-file", str(few["test"]), "--student-layers",
            "0,1", "--alpha", "1", "--epochs", "1", "--max-length", "32", "--no-baseline", "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    soft = np.stack([r["teacher"] for r in seen["rows"] if not r["labeled"]])
    teacher = TextClassifier.from_pretrained(setfit_run, ensemble=False)
    np.testing.assert_allclose(soft, teacher.logits([r["text"] for r in unlabelled]), atol=1e-4)
    # the student: the SetFit encoder's weights under a sequence-classification head, loadable as such
    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert student.config.id2label == teacher.model.config.id2label
    assert "(30 unlabelled)" in (out / "train.log").read_text()


def test_student_layers_of_a_setfit_teacher_are_its_encoders(setfit_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from bertcls.compress.student import from_teacher_layers
    from bertcls.core.models import load_trained, read_meta

    teacher = load_trained(setfit_run, read_meta(setfit_run))
    from_teacher_layers(teacher, [1], tmp_path / "s")
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "s")
    assert student.config.num_hidden_layers == 1 and student.config.id2label == teacher.config.id2label
    encoder = teacher.encoder.state_dict()
    for name, w in student.base_model.state_dict().items():
        assert torch.equal(w, encoder[name.replace(".layer.0.", ".layer.1.")]), name


def test_prune_and_layer_losses_refuse_a_setfit_model(setfit_run, few, tmp_path, capsys):
    out = tmp_path / "bad"
    common = [
        "--train-file",
        str(few["train"]),
        "--validation-file",
        str(few["dev"]),
        "--output-dir",
        str(out),
    ]
    assert main(["prune", "--source", str(setfit_run), *common]) == 2
    err = capsys.readouterr().err  # the tiny model's two layers, all kept
    assert "is a SetFit (sentence-embedding) model: prune a fine-tuned classifier" in err
    assert "--student-layers 0,1 ..." in err
    assert main(["distill", "--teacher", str(setfit_run), *common, "--hidden-weight", "1"]) == 2
    assert "the layer losses need a sequence-classification teacher" in capsys.readouterr().err
    assert not out.exists()
