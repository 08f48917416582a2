from __future__ import annotations

import pytest
from helpers import sentiment_rows, write_csv, write_jsonl

from bertcls.core.data import Columns, load, split_validation
from bertcls.core.errors import UserError

COLS = Columns()


def test_all_formats_read_the_same(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sentiment_rows(12)
    write_csv(tmp_path / "a.csv", rows)
    (tmp_path / "a.tsv").write_text("text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows))
    write_jsonl(tmp_path / "a.jsonl", rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    got = [load(tmp_path / f"a.{ext}", COLS) for ext in ("csv", "tsv", "jsonl", "parquet")]
    for d in got:
        assert d.texts == [r["text"] for r in rows]
        assert d.labels == [r["label"] for r in rows]


def test_labels_stay_strings_and_jsonl_numbers_become_strings(tmp_path):
    write_jsonl(tmp_path / "n.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 0}])
    assert load(tmp_path / "n.jsonl", COLS).labels == ["1", "0"]


def test_multilabel_csv_and_jsonl(tmp_path):
    write_csv(tmp_path / "m.csv", [{"text": "a", "label": "x;y"}, {"text": "b", "label": "y"}])
    write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "label": ["y", "x"]}, {"text": "b", "label": ["y"]}])
    for f in ("m.csv", "m.jsonl"):
        assert load(tmp_path / f, COLS, multi_label=True).labels == [["x", "y"], ["y"]]


def test_multilabel_rows_with_no_label_are_data_single_label_still_refuses(tmp_path, capsys):
    write_csv(tmp_path / "m.csv", [{"text": "a", "label": "x;y"}, {"text": "b", "label": ""}])
    write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "label": ["y", "x"]}, {"text": "b", "label": []}])
    for f in ("m.csv", "m.jsonl"):
        assert load(tmp_path / f, COLS, multi_label=True).labels == [["x", "y"], []]
    with pytest.raises(UserError, match=r"1 row\(s\) with no value in column 'label' at line 3"):
        load(tmp_path / "m.csv", COLS)


def test_multilabel_duplicate_labels_counted_once(tmp_path, capsys):
    write_csv(tmp_path / "d.csv", [{"text": "a", "label": "x;y;x"}, {"text": "b", "label": "y"}])
    assert load(tmp_path / "d.csv", COLS, multi_label=True).labels == [["x", "y"], ["y"]]
    err = capsys.readouterr().err
    assert (
        "d.csv: 1 row(s) list a label more than once in column 'label' at line 2; each label counts once"
        in err
    )


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"nope\.csv: file not found"):
        load(tmp_path / "nope.csv", COLS)


def test_unknown_column_lists_columns(tmp_path):
    write_csv(tmp_path / "a.csv", [{"sentence": "x", "label": "1"}])
    with pytest.raises(
        UserError, match=r"no column 'text' \(columns are: sentence, label\); pass --text-column"
    ):
        load(tmp_path / "a.csv", COLS)


def test_empty_text_names_lines_and_skip_empty(tmp_path):
    write_csv(
        tmp_path / "a.csv",
        [
            {"text": "ok", "label": "1"},
            {"text": "  ", "label": "0"},
            {"text": "fine", "label": "0"},
            {"text": "", "label": "1"},
        ],
    )
    with pytest.raises(UserError, match=r"2 row\(s\) with empty text at line 3, 5; .*--skip-empty"):
        load(tmp_path / "a.csv", COLS)
    assert load(tmp_path / "a.csv", COLS, skip_empty=True).texts == ["ok", "fine"]


def test_missing_label(tmp_path):
    write_csv(tmp_path / "a.csv", [{"text": "ok", "label": "1"}, {"text": "hm", "label": ""}])
    with pytest.raises(UserError, match=r"no value in column 'label' at line 3"):
        load(tmp_path / "a.csv", COLS)


def test_malformed_csv_names_line(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"fine",1\nan, unquoted, comma,0\n')
    with pytest.raises(UserError, match=r"line 3: expected 2 fields .* found 4"):
        load(tmp_path / "a.csv", COLS)


def test_malformed_json_names_line_and_column(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "a", "label": "1"}\n{"text": "b", "label": }\n')
    with pytest.raises(UserError, match=r"a\.jsonl: line 2, column \d+: malformed JSON"):
        load(tmp_path / "a.jsonl", COLS)


def test_non_utf8_names_line_and_fix_and_encoding_flag(tmp_path):
    (tmp_path / "a.csv").write_bytes("text,label\nok,1\ncaf\u00e9,0\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"line 3, byte 4: not valid utf-8.*--encoding"):
        load(tmp_path / "a.csv", COLS)
    assert load(tmp_path / "a.csv", COLS, encoding="latin-1").texts[1] == "caf\u00e9"


def test_unknown_extension(tmp_path):
    (tmp_path / "a.xlsx").write_text("x")
    with pytest.raises(UserError, match=r"unknown file type '\.xlsx'"):
        load(tmp_path / "a.xlsx", COLS)


def test_stratified_split_is_seeded_and_keeps_classes(tmp_path):
    write_csv(tmp_path / "a.csv", sentiment_rows(100))
    d = load(tmp_path / "a.csv", COLS)
    tr1, va1 = split_validation(d, 0.2, seed=3, multi_label=False)
    tr2, va2 = split_validation(d, 0.2, seed=3, multi_label=False)
    assert va1.texts == va2.texts and len(va1) == 20 and len(tr1) == 80
    assert sorted(set(va1.labels)) == ["negative", "positive"]
    assert va1.labels.count("positive") == 10


def test_text_longer_than_csv_default_field_limit(tmp_path):
    """Python's csv refuses fields over 131,072 characters unless the limit is raised."""
    long = "word " * 40_000  # 200,000 characters
    write_csv(tmp_path / "a.csv", [{"text": long, "label": "x"}, {"text": "short", "label": "y"}])
    (tmp_path / "a.tsv").write_text(f"text\tlabel\n{long}\tx\n")
    assert load(tmp_path / "a.csv", COLS).texts[0] == long
    assert load(tmp_path / "a.tsv", COLS).texts[0] == long


def test_utf16_with_bom_reads(tmp_path):
    rows = [{"text": "caf\u00e9 \u4e2d\u6587", "label": "a"}, {"text": "line two", "label": "b"}]
    write_csv(tmp_path / "u8.csv", rows)
    (tmp_path / "u16.csv").write_text((tmp_path / "u8.csv").read_text(), encoding="utf-16")  # with BOM
    assert (tmp_path / "u16.csv").read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    got = load(tmp_path / "u16.csv", COLS, encoding="utf-16")
    assert got.texts == [r["text"] for r in rows] and got.labels == ["a", "b"] and got.rows == [2, 3]
    (tmp_path / "be.jsonl").write_bytes(
        b"\xfe\xff" + '{"text": "x\u00e9", "label": "a"}\n'.encode("utf-16-be")
    )
    assert load(tmp_path / "be.jsonl", COLS, encoding="utf-16-be").texts == ["x\u00e9"]  # BOM dropped


def test_bad_utf16_names_the_line(tmp_path):
    good = "text,label\nok,1\nfine,0\n".encode("utf-16-le")
    (tmp_path / "a.csv").write_bytes(good + b"\x00\xd8a\x00")  # a lone high surrogate on line 4
    with pytest.raises(UserError, match=r"a\.csv: line 4: not valid utf-16-le; pass --encoding"):
        load(tmp_path / "a.csv", COLS, encoding="utf-16-le")


def test_lone_surrogate_escape_in_jsonl_is_refused(tmp_path):
    f = tmp_path / "a.jsonl"
    # A proper pair (an emoji) is fine; "\ud800" alone cannot be encoded as UTF-8 anywhere downstream.
    f.write_text('{"text": "ok \\ud83d\\ude00", "label": "a"}\n{"text": "bad \\ud800", "label": "b"}\n')
    with pytest.raises(
        UserError, match=r"a\.jsonl: line 2: field 'text' contains a lone surrogate escape .*; remove it"
    ):
        load(f, COLS)
    f.write_text('{"text": "ok \\ud83d\\ude00", "label": "a"}\n')
    assert load(f, COLS).texts == ["ok \U0001f600"]


@pytest.mark.parametrize("token", ["NaN", "nan", "null", "None", "NA", "N/A"])
def test_missing_label_tokens_are_refused_skipped_or_kept(tmp_path, token, capsys):
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": token}, {"text": "c", "label": "y"}]
    f = write_csv(tmp_path / "a.csv", rows)
    with pytest.raises(
        UserError, match=r"1 row\(s\) whose label in column 'label' reads as a missing value .* at line 3; "
    ):
        load(f, COLS)
    skipped = load(f, COLS, missing_labels="skip")
    assert skipped.labels == ["x", "y"] and skipped.rows == [2, 4]
    assert "bertcls: warning:" in capsys.readouterr().err
    assert load(f, COLS, missing_labels="keep").labels == ["x", token, "y"]


def test_jsonl_null_and_nan_labels(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": NaN}\n{"text": "c", "label": null}\n')
    with pytest.raises(UserError, match=r"no value in column 'label' at line 3; .*--missing-labels skip"):
        load(f, COLS)
    assert load(f, COLS, missing_labels="skip").texts == ["a"]


def test_empty_label_cells_skip_but_keep_still_refuses(tmp_path):
    f = write_csv(tmp_path / "a.csv", [{"text": "a", "label": "x"}, {"text": "b", "label": ""}])
    assert load(f, COLS, missing_labels="skip").texts == ["a"]
    with pytest.raises(UserError, match=r"no value in column 'label' at line 3"):
        load(f, COLS, missing_labels="keep")
