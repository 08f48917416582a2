"""`bertcls self-train`: rounds of pseudo-labelling from a teacher, the surest kept per class, a fresh
student each round; a standard run directory that records the rounds; gold rows alone validate; one-line
errors leave nothing behind."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers import sentiment_rows, write_csv

from bertcls.cli import main


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    d = tmp_path_factory.mktemp("unl")
    return write_csv(d / "unl.csv", [{"text": r["text"]} for r in sentiment_rows(60, seed=11)], ["text"])


def self_train_args(teacher, model, files, unl, out, *extra):
    return ["self-train", "--teacher", str(teacher), "--model", str(model), "--train-file", str(files["train"]),
            "--unlabeled-file", str(unl), "--test-file", str(files["test"]), "--output-dir", str(out),
            "--epochs", "1", "--batch-size", "16", "--learning-rate", "3e-3", "--max-length", "32",
            "--no-baseline", *extra]  # fmt: skip


def test_rounds_keep_the_surest_and_record_everything(
    trained_tiny, tiny_bert, sentiment_files, unlabelled, tmp_path
):
    from sklearn.metrics import f1_score
    from transformers import AutoModelForSequenceClassification

    from bertcls import TextClassifier

    out = tmp_path / "st"
    assert (
        main(self_train_args(trained_tiny, tiny_bert, sentiment_files, unlabelled, out, "--keep", "0.5,1"))
        == 0
    )
    meta = json.loads((out / "bertcls.json").read_text())["self_training"]
    assert [r["keep"] for r in meta["rounds"]] == [0.5, 1.0] and meta["unlabeled_texts"] == 60
    assert meta["rounds"][0]["teacher"] == str(trained_tiny) and meta["rounds"][1]["teacher"] == "round 1"
    assert meta["rounds"][1]["kept"] == 60
    # round 1: the teacher's surest half of each predicted class, with its labels and probabilities
    texts = [r["text"] for r in csv.DictReader(open(unlabelled, encoding="utf-8"))]
    teacher = TextClassifier.from_pretrained(trained_tiny)
    probs = teacher.predict_proba(texts)
    rows = list(csv.DictReader(open(out / "self_training" / "round1.csv", encoding="utf-8")))
    pseudo = [r for r in rows if r["label_source"] != "gold"]
    assert {r["label_source"] for r in pseudo} == {"round 1 teacher"}
    assert sum(r["label_source"] == "gold" for r in rows) < 200  # validation carved from the gold rows
    for label in teacher.labels:
        j = teacher.labels.index(label)
        mine = sorted(float(r["confidence"]) for r in pseudo if r["label"] == label)
        all_of_class = sorted(probs[probs.argmax(1) == j, j])
        assert len(mine) == round(len(all_of_class) / 2)
        assert not mine or min(mine) >= np.median(all_of_class) - 1e-4  # the surest half
    for r in pseudo:
        i = texts.index(r["text"])
        assert r["label"] == teacher.labels[int(probs[i].argmax())]
    # validation: the same gold rows in every round, none of them pseudo-labelled
    assert "validation.csv" in (out / "run_config.yaml").read_text()
    held = list(csv.DictReader(open(out / "self_training" / "validation.csv", encoding="utf-8")))
    assert held and {r["label_source"] for r in held} == {"gold"}
    assert not {r["text"] for r in held} & {r["text"] for r in rows}  # never trained on
    # a standard run directory: plain transformers loads it with the real label names
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert set(model.config.id2label.values()) == set(teacher.labels)
    assert "## Self-training" in (out / "README.md").read_text()
    assert (out / "self_train_config.yaml").is_file() and (out / "self_training" / "round2.csv").is_file()
    # the model is the round with the best validation f1_macro (ties: the later round), and says so
    scores = [r["f1_macro"] for r in meta["rounds"]]
    best = max(i for i, v in enumerate(scores, 1) if v == max(scores))
    assert meta["best_round"] == best and meta["metric"] == "f1_macro"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["f1_macro"] == scores[best - 1]
    assert f"This model is\nround {best}" in (out / "README.md").read_text()
    # the teacher's score on the same validation rows, the bar the rounds are compared with
    teacher_pred = teacher.predict([r["text"] for r in held])
    f1 = f1_score(
        [r["label"] for r in held], teacher_pred, labels=teacher.labels, average="macro", zero_division=0
    )
    assert meta["teacher_validation"] == pytest.approx(f1)
    # the run's files name where they ended up, not the staging directory; no round models, no staging left
    config = (out / "run_config.yaml").read_text()
    assert f"train_file: {out}/self_training/round{best}.csv" in config and ".tmp" not in config
    assert f"output_dir: {out}\n" in config and not (out / "rounds").exists()
    assert [p.name for p in out.parent.iterdir()] == ["st"]


def test_best_round_and_the_teacher_warning(trained_tiny, tmp_path):
    from bertcls.train.self_train import best_round, summarize

    rounds = [{"round": 1, "f1_macro": 0.8, "loss": 0.5}, {"round": 2, "f1_macro": 0.7, "loss": 0.4},
              {"round": 3, "f1_macro": 0.8, "loss": 0.6}]  # fmt: skip
    assert best_round(rounds, "f1_macro") == 3  # a tie goes to the later round
    assert best_round(rounds, "loss") == 2  # lower is better
    result = json.loads((trained_tiny / "metrics.json").read_text()) | {"output_dir": str(trained_tiny)}
    rounds = [{"round": 1, "kept": 5, "f1_macro": 0.7}]
    result["self_training"] = {"teacher": "t", "unlabeled_texts": 9, "rounds": rounds, "metric": "f1_macro",
                               "best_round": 1, "teacher_validation": 0.9, "teacher_better": True}  # fmt: skip
    text = summarize(result)
    assert "this model is round 1, the best on validation (teacher: 0.9000)" in text
    assert (
        "warning: the teacher scores better on validation f1_macro (0.9000) than every round (0.7000)" in text
    )


def test_a_failed_round_keeps_the_earlier_result(trained_tiny, tiny_bert, sentiment_files, unlabelled, tmp_path,
                                                 capsys):  # fmt: skip
    """Nothing is replaced before every round is done: a round that fails leaves the old run and no staging."""
    out = tmp_path / "st"
    out.mkdir()
    (out / "run_config.yaml").write_text("method: finetune\n")  # an earlier `bertcls train` result
    (out / "model.safetensors").write_bytes(b"old")
    bad_test = write_csv(
        tmp_path / "test.csv", [{"sentence": "a b", "label": "positive"}], ["sentence", "label"]
    )
    files = dict(sentiment_files, test=bad_test)
    assert main(self_train_args(trained_tiny, tiny_bert, files, unlabelled, out, "--overwrite")) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["st", "test.csv"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--keep", "0.8,0.5"],
            "--keep='0.8,0.5' is invalid: give one fraction per round in (0, 1], never decreasing",
        ),
        (["--keep", "0"], "--keep='0' is invalid"),
        (["--multi-label"], "--multi-label=True is invalid: self-training keeps confident single labels"),
        (["--method", "setfit"], "--method='setfit' is invalid: each round fine-tunes the student"),
    ],
)
def test_bad_options(trained_tiny, tiny_bert, sentiment_files, unlabelled, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(self_train_args(trained_tiny, tiny_bert, sentiment_files, unlabelled, out, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_refuses_a_teacher_of_other_labels_and_an_empty_unlabelled_file(
    trained_tiny, tiny_bert, sentiment_files, tmp_path, capsys
):
    out = tmp_path / "bad"
    other = write_csv(tmp_path / "other.csv", [{"text": "a b", "label": "x"}, {"text": "c d", "label": "y"}])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    files = dict(sentiment_files, train=other)
    assert main(self_train_args(trained_tiny, tiny_bert, files, empty, out)) == 2
    assert "predicts ['negative', 'positive']" in capsys.readouterr().err
    assert main(self_train_args(trained_tiny, tiny_bert, sentiment_files, empty, out)) == 2
    assert f"--unlabeled-file={empty}: no texts" in capsys.readouterr().err
    assert not out.exists()


def test_ctrl_c_in_a_round_leaves_nothing_and_says_run_again(
    trained_tiny, tiny_bert, sentiment_files, unlabelled, tmp_path, capsys, monkeypatch
):
    """Regression: train's Ctrl-C advice ("Continue with: ... --resume") named a round's directory in the
    staging, which is deleted; self-train cannot resume anyway."""
    import bertcls.train.train as train_module
    from bertcls.core.runtime import Interrupted

    def interrupted(cfg, **kw):
        raise Interrupted(
            f"interrupted at step 3. Continue with: bertcls train --config {cfg.output_dir} --resume"
        )

    monkeypatch.setattr(train_module, "run", interrupted)
    out = tmp_path / "st"
    assert main(self_train_args(trained_tiny, tiny_bert, sentiment_files, unlabelled, out)) == 130
    err = capsys.readouterr().err
    assert f"self-train interrupted; {out} is unchanged; run the same command again" in err
    assert "--resume" not in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
