"""`bertcls augment` and `train --augment`: seeded, labels kept, rows marked, training split only, Chinese
intact, bad input refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import sentiment_rows, train_args, write_csv

from bertcls.cli import main

ZH_ROWS = [
    {"text": "这家酒店的服务很好，房间也很干净，就是早餐太贵了。", "label": "正面"},
    {"text": "房间很小，而且很吵，服务员的态度也不好。", "label": "负面"},
    {"text": "位置方便，价格便宜，下次还会再来。", "label": "正面"},
    {"text": "电影很无聊，演员的表演也很差。", "label": "负面"},
]


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def augment(src: Path, out: Path, *extra: str) -> int:
    return main(["augment", "--file", str(src), "--output", str(out), *extra])


@pytest.fixture()
def en_file(tmp_path) -> Path:
    rows = sentiment_rows(12, seed=4) + [{"text": "great", "label": "positive"}]  # one word: nothing to do
    return write_csv(tmp_path / "train.csv", rows)


def test_eda_is_seeded_keeps_labels_and_marks_every_new_row(en_file, tmp_path, capsys):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    assert augment(en_file, a, "--per-text", "3", "--seed", "1") == 0
    assert "1 texts gave none" in capsys.readouterr().out  # the one-word row, counted
    assert augment(en_file, b, "--per-text", "3", "--seed", "1") == 0
    assert augment(en_file, c, "--per-text", "3", "--seed", "2") == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    rows, originals = read(a), read(en_file)
    assert [r["text"] for r in rows[: len(originals)]] == [r["text"] for r in originals]
    assert {r["augmentation"] for r in rows[: len(originals)]} == {"original"}
    new = rows[len(originals) :]
    assert len(new) == 3 * (len(originals) - 1)
    by_line = {str(i + 2): r for i, r in enumerate(originals)}  # header is line 1
    for r in new:
        assert r["augmentation"] == "eda"
        source = by_line[r["augmented_from"]]
        assert r["label"] == source["label"] and r["text"] != source["text"]


def test_chinese_eda_uses_jieba_words_and_cilin_synonyms_without_broken_characters(tmp_path):
    from bertcls.train.augmenters import chinese_synonyms

    src = write_csv(tmp_path / "zh.csv", ZH_ROWS)
    out = tmp_path / "zh_aug.csv"
    assert augment(src, out, "--per-text", "4", "--alpha", "0.2") == 0
    rows = read(out)[len(ZH_ROWS) :]
    assert len(rows) == 4 * len(ZH_ROWS)
    synonym_chars = {ch for words in chinese_synonyms().values() for w in words for ch in w}
    for r in rows:
        source = ZH_ROWS[int(r["augmented_from"]) - 2]
        assert r["label"] == source["label"]
        assert "\ufffd" not in r["text"] and " " not in r["text"]  # no broken or spaced-out characters
        assert set(r["text"]) <= set(source["text"]) | synonym_chars


def test_mlm_replacement_with_a_model_that_has_an_mlm_head(tmp_path, tiny_bert):
    from transformers import BertForMaskedLM

    mlm_dir = tmp_path / "mlm"
    BertForMaskedLM.from_pretrained(tiny_bert).save_pretrained(mlm_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (tiny_bert / name).is_file():
            (mlm_dir / name).write_bytes((tiny_bert / name).read_bytes())
    src = write_csv(tmp_path / "train.csv", sentiment_rows(6, seed=5))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (a, b):
        assert augment(src, out, "--method", "mlm", "--augment-model", str(mlm_dir), "--alpha", "0.3") == 0
    assert a.read_bytes() == b.read_bytes()
    new = [r for r in read(a) if r["augmentation"] == "mlm"]
    assert new and all(r["text"] not in {s["text"] for s in sentiment_rows(6, seed=5)} for r in new)


def test_train_augment_touches_the_training_split_only(tiny_bert, tmp_path):
    files = {
        "train": write_csv(tmp_path / "train.csv", sentiment_rows(40, seed=1)),
        "dev": write_csv(tmp_path / "dev.csv", sentiment_rows(20, seed=2)),
        "test": write_csv(tmp_path / "test.csv", sentiment_rows(20, seed=3)),
    }
    out = tmp_path / "run"
    args = train_args(tiny_bert, files, out, "--augment", "eda:2", "--epochs", "1", "--no-baseline")
    args.remove("--validation-file")
    args.remove(str(files["dev"]))  # validation carved from train: it must be carved before augmenting
    args += ["--validation-split", "0.25"]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["train"]["n_validation"] == 10
    assert m["train"]["n_train"] == 30 * 3
    assert m["test"]["n"] == 20


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--per-text", "0"], "--per-text=0 is invalid: must be >= 1"),
        (["--method", "mlm"], "--augment-model"),
        (["--alpha", "0.9"], "--alpha=0.9"),
        (["--text-column", "body"], "no column 'body'"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(en_file, tmp_path, capsys, extra, message):
    out = tmp_path / "out.csv"
    assert augment(en_file, out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_model_without_an_mlm_head_is_refused(en_file, tiny_bert, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert augment(en_file, out, "--method", "mlm", "--augment-model", str(tiny_bert)) == 2
    assert "has no masked-language-model head" in capsys.readouterr().err
    assert not out.exists()


def test_an_existing_file_is_replaced_only_if_augment_wrote_it(en_file, tmp_path, capsys):
    mine = tmp_path / "notes.csv"
    mine.write_text("text,label\nkeep me,positive\n")
    assert augment(en_file, mine, "--overwrite") == 2
    assert "not an earlier 'bertcls augment' output" in capsys.readouterr().err
    assert mine.read_text() == "text,label\nkeep me,positive\n"
    assert augment(en_file, en_file) == 2  # the input itself
    out = tmp_path / "aug.csv"
    assert augment(en_file, out) == 0
    assert augment(en_file, out) == 2  # exists: needs --overwrite
    assert augment(en_file, out, "--overwrite", "--per-text", "1") == 0


@pytest.mark.parametrize("spec", ["eda", "eda:0", "bt:2", "mlm:2"])
def test_train_augment_spec_errors(tiny_bert, sentiment_files, tmp_path, capsys, spec):
    out = tmp_path / "run"
    assert main(train_args(tiny_bert, sentiment_files, out, "--augment", spec)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("--augment" in err[0]), err
    assert not out.exists()
