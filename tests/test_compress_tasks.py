"""distill and prune on the other task shapes (issue 12: "works for Chinese models the same way (character
vocabularies, pair tasks, multi-label)"): a multi-label teacher distils on sigmoid targets and prunes with its
thresholds kept, a sentence-pair teacher's student reads both segments, a character-vocabulary Chinese
teacher distils without broken text."""

from __future__ import annotations

import json
import random

from helpers import make_tiny_bert, multilabel_rows, pair_rows, train_args, write_csv

from bertcls.cli import main

SHORT = ["--epochs", "4", "--batch-size", "16", "--learning-rate", "3e-3", "--max-length", "24"]


def _files(tmp_path, rows_of) -> dict:
    return {
        name: write_csv(tmp_path / f"{name}.csv", rows_of(n, seed))
        for name, n, seed in (("train", 200, 1), ("dev", 60, 2), ("test", 60, 3))
    }


ZH_POS, ZH_NEG, ZH_FILL = list("好棒赞美爱"), list("差烂坏糟恨"), list("这个电影的故事很是有点")


def _zh_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        chars = rng.sample(ZH_FILL, 5) + [rng.choice(ZH_POS if pos else ZH_NEG)] * 2
        rng.shuffle(chars)
        rows.append({"text": "".join(chars), "label": "正面" if pos else "负面"})
    return rows


def _distill(teacher, files, out, *extra) -> int:
    args = ["distill", "--teacher", str(teacher), "--train-file", str(files["train"])]
    args += ["--validation-file", str(files["dev"]), "--test-file", str(files["test"])]
    return main([*args, "--output-dir", str(out), "--student-layers", "1", *SHORT, *extra])


def test_multilabel_teacher_distils_and_prunes(tmp_path, tiny_bert):
    from bertcls import TextClassifier

    files = _files(tmp_path, multilabel_rows)
    teacher = tmp_path / "teacher"
    assert main(train_args(tiny_bert, files, teacher, "--multi-label", *SHORT)) == 0
    student = tmp_path / "student"
    assert _distill(teacher, files, student, "--multi-label") == 0
    meta = json.loads((student / "bertcls.json").read_text())
    assert (
        meta["task"] == "multi_label"
        and len(meta["thresholds"]) == 2
        and meta["labels"] == ["film", "positive"]
    )
    assert meta["distillation"]["teacher"] == str(teacher)
    val = json.loads((student / "metrics.json").read_text())["validation"]
    assert val["f1_micro"] > val["label_prior_predictor"]["f1_micro"]  # it learned more than base rates
    clf = TextClassifier.from_pretrained(student)
    assert isinstance(clf.predict("a good film"), list)  # one text in, one label set out
    pruned = tmp_path / "pruned"
    args = ["prune", "--source", str(teacher), "--train-file", str(files["train"]), "--multi-label"]
    args += ["--validation-file", str(files["dev"]), "--output-dir", str(pruned), "--target-sparsity", "0.5"]
    assert main([*args, *SHORT]) == 0
    pmeta = json.loads((pruned / "bertcls.json").read_text())
    assert pmeta["task"] == "multi_label" and pmeta["pruning"]["ffn_neurons"] == [64, 32]


def test_pair_teacher_student_reads_both_segments(tmp_path, tiny_bert):
    from bertcls import TextClassifier

    files = _files(tmp_path, pair_rows)
    cols = ["--text-column", "a", "--text-pair-column", "b"]
    teacher = tmp_path / "teacher"
    assert main(train_args(tiny_bert, files, teacher, *cols, *SHORT)) == 0
    student = tmp_path / "student"
    assert _distill(teacher, files, student, *cols, "--alpha", "0.9") == 0
    assert json.loads((student / "bertcls.json").read_text())["text_pair_column"] == "b"
    # the label is only in B: a student above chance on unseen pairs reads B
    assert json.loads((student / "metrics.json").read_text())["test"]["accuracy"] >= 0.85
    a = "the movie was a story"
    pred = TextClassifier.from_pretrained(student).predict([a, a], ["great film great", "awful film awful"])
    assert pred == ["positive", "negative"]


def test_chinese_character_teacher_distils(tmp_path):
    from bertcls import TextClassifier

    zh = make_tiny_bert(tmp_path / "zh-bert", words=ZH_POS + ZH_NEG + ZH_FILL)
    files = _files(tmp_path, _zh_rows)
    teacher = tmp_path / "teacher"
    assert main(train_args(zh, files, teacher, *SHORT)) == 0
    student = tmp_path / "student"
    assert _distill(teacher, files, student) == 0
    assert json.loads((student / "metrics.json").read_text())["test"]["accuracy"] >= 0.85
    clf = TextClassifier.from_pretrained(student)
    assert clf.predict(["这个电影很好好", "这个故事很差差"]) == ["正面", "负面"]
    assert (
        "正面" in (student / "config.json").read_text(encoding="utf-8")
        or "\\u6b63" in (student / "config.json").read_text()
    )
