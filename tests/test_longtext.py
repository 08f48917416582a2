"""Long texts (issue 14): truncate, head+tail and chunks in encoding, training, every backend, and the
one-line errors for impossible settings."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from helpers import FILLER, NEG, POS, multilabel_rows, sentiment_rows, train_args, write_csv

from bertcls.cli import main
from bertcls.core.errors import UserError
from bertcls.core.longtext import LongText, encode_long, pool, windows

WORDS = POS + NEG + FILLER


@pytest.fixture(scope="module")
def tok(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def _text(n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n))


def test_chunks_cover_every_token_once_outside_the_overlaps(tok):
    text = _text(101)
    full = tok(text, add_special_tokens=False)["input_ids"]
    rows = encode_long(tok, [text], None, 20, LongText("chunks", stride=5))
    bodies = [r["input_ids"][1:-1] for r in rows]
    assert all(r["input_ids"][0] == tok.cls_token_id and r["input_ids"][-1] == tok.sep_token_id for r in rows)
    assert all(len(b) <= 18 for b in bodies) and {r["doc"] for r in rows} == {0}
    rebuilt = list(bodies[0])
    for prev, cur in zip(bodies, bodies[1:]):
        assert prev[-5:] == cur[:5]  # neighbours share exactly the stride
        rebuilt += cur[5:]
    assert rebuilt == full
    spans = windows(101, 18, LongText("chunks", stride=5))
    assert spans[0][0] == 0 and spans[-1][1] == 101


def test_head_tail_keeps_the_start_and_the_end(tok):
    text = _text(60, seed=1)
    full = tok(text, add_special_tokens=False)["input_ids"]
    (row,) = encode_long(tok, [text], None, 20, LongText("head-tail", head_tokens=6))
    assert row["input_ids"][1:-1] == full[:6] + full[-12:]
    (short,) = encode_long(tok, ["good film"], None, 20, LongText("head-tail"))
    (plain,) = encode_long(tok, ["good film"], None, 20, LongText("truncate"))
    assert short["input_ids"] == plain["input_ids"]  # texts that fit are read whole by every strategy


def test_pairs_keep_segment_b_in_every_window(tok):
    a, b = _text(80, seed=2), "good plot"
    b_ids = tok(b, add_special_tokens=False)["input_ids"]
    rows = encode_long(tok, [a], [b], 24, LongText("chunks", stride=4))
    assert len(rows) > 1
    for r in rows:
        k = len(b_ids) + 1
        assert r["input_ids"][-k:] == b_ids + [tok.sep_token_id] and r["token_type_ids"][-k:] == [1] * k
        assert len(r["input_ids"]) <= 24


def test_pooling_is_the_mean_or_max_of_window_logits():
    rows = [{"doc": 0}, {"doc": 1}, {"doc": 1}, {"doc": 1}]
    logits = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, -1.0], [1.0, 1.0]], dtype=np.float32)
    assert np.allclose(pool(logits, rows, 2, "mean"), [[1, 0], [1, 1]])
    assert np.allclose(pool(logits, rows, 2, "max"), [[1, 0], [2, 3]])


def test_a_very_long_text_is_linear_work(tok):
    text = _text(20_000, seed=3)  # ~110k characters
    assert len(text) > 100_000
    t0 = time.perf_counter()
    rows = encode_long(tok, [text], None, 128, LongText("chunks", stride=0))
    assert time.perf_counter() - t0 < 10
    assert len(rows) == -(-20_000 // 126)


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--long-text", "chunks", "--stride", "30"], "--stride=30"),
        (["--long-text", "head-tail", "--head-tokens", "31"], "--head-tokens=31"),
        (["--long-text", "sliding"], "--long-text"),
        (["--max-length", "4096"], "--max-length=4096"),
    ],
)
def test_impossible_settings_are_one_line_errors(tmp_path, tiny_bert, sentiment_files, capsys, flags, needle):
    code = main(train_args(tiny_bert, sentiment_files, tmp_path / "run", *flags))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def chunk_run(tmp_path_factory, tiny_bert):
    """Sentiment where the deciding words sit at the end of long texts: truncation cannot see them."""
    d = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)

    def rows(n, seed):
        out = []
        for r in sentiment_rows(n, seed=seed):
            filler = " ".join(FILLER[i] for i in rng.integers(0, len(FILLER), 40))
            out.append({"text": filler + " " + r["text"], "label": r["label"]})
        return out

    files = {
        "train": write_csv(d / "train.csv", rows(160, 1)),
        "dev": write_csv(d / "dev.csv", rows(40, 2)),
        "test": write_csv(d / "test.csv", rows(40, 3)),
    }
    out = d / "run"
    args = train_args(tiny_bert, files, out, "--long-text", "chunks", "--stride", "4", "--pooling", "max")
    args[args.index("--max-length") + 1] = "16"
    assert main(args) == 0
    return out, files


def test_a_chunked_model_predicts_with_chunks_after_reload(chunk_run, tmp_path):
    from bertcls import TextClassifier

    out, files = chunk_run
    meta = json.loads((out / "bertcls.json").read_text())
    assert meta["long_text"] == {"strategy": "chunks", "head_tokens": None, "stride": 4, "pooling": "max"}
    clf = TextClassifier.from_pretrained(out, device="cpu")
    assert clf.long_text.strategy == "chunks" and clf.long_text.pooling == "max"
    texts = [_text(50, seed=s) for s in range(3)]
    rows = clf.encode(texts)
    assert len(rows) > 3
    assert np.allclose(clf.logits(texts), pool(clf.row_logits(rows), rows, 3, "max"), atol=1e-6)
    pytest.importorskip("onnxruntime")
    assert main(["export", str(out), "--format", "onnx"]) == 0
    onnx = TextClassifier.from_pretrained(out, backend="onnx", threads=1)
    assert onnx.long_text.strategy == "chunks"
    assert np.abs(onnx.logits(texts) - clf.logits(texts)).max() < 1e-4


def test_inference_flags_override_the_saved_strategy(chunk_run, tmp_path, capsys):
    out, files = chunk_run
    ev = tmp_path / "ev"
    args = ["evaluate", str(out), "--file", str(files["test"]), "--output-dir", str(ev)]
    assert main([*args, "--long-text", "truncate"]) == 0
    truncated = json.loads((ev / "metrics.json").read_text())["accuracy"]
    assert main([*args]) == 0
    chunked = json.loads((ev / "metrics.json").read_text())["accuracy"]
    trained = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
    assert chunked == pytest.approx(trained)
    assert truncated <= chunked
    capsys.readouterr()
    assert main([*args, "--stride", "99"]) == 2
    assert "--stride=99" in capsys.readouterr().err


def test_long_text_check_names_the_flag():
    with pytest.raises(UserError, match="--pooling='median'"):
        LongText("chunks", pooling="median").check(32)


def test_the_service_reads_in_chunks_and_says_how_many(chunk_run):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bertcls import TextClassifier
    from bertcls.deploy.serve import ServeConfig, create_app

    out, _ = chunk_run
    clf = TextClassifier.from_pretrained(out, device="cpu")
    long_text, short = _text(50, seed=4), "good film"
    app = create_app(clf, ServeConfig(model_dir=str(out)))
    with TestClient(app, base_url="http://localhost") as c:
        assert c.get("/v1/model").json()["long_text"]["strategy"] == "chunks"
        r = c.post("/v1/classify", json={"texts": [long_text, short], "top_k": 2})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
    assert res[0]["chunks"] == len(clf.encode([long_text])) > 1 and res[1]["chunks"] == 1
    probs = clf.predict_proba([long_text])[0]
    got = {x["label"]: x["score"] for x in res[0]["top_k"]}
    assert got[clf.labels[0]] == pytest.approx(float(probs[0]), abs=1e-5)


def test_multilabel_trains_and_predicts_with_head_tail(tmp_path, tiny_bert):
    from bertcls import TextClassifier

    rows = [
        {"text": _text(30, seed=i) + " " + r["text"], "label": r["label"]}
        for i, r in enumerate(multilabel_rows(200, seed=7))
    ]
    files = {
        "train": write_csv(tmp_path / "train.csv", rows[:140]),
        "dev": write_csv(tmp_path / "dev.csv", rows[140:170]),
        "test": write_csv(tmp_path / "test.csv", rows[170:]),
    }
    out = tmp_path / "run"
    args = train_args(tiny_bert, files, out, "--multi-label", "--long-text", "head-tail", "--epochs", "1")
    args[args.index("--max-length") + 1] = "16"
    assert main(args) == 0
    clf = TextClassifier.from_pretrained(out, device="cpu")
    assert clf.long_text.strategy == "head-tail" and clf.multi_label
    assert all(isinstance(p, list) for p in clf.predict([r["text"] for r in rows[170:175]]))
    assert json.loads((out / "metrics.json").read_text())["test"]["n"] == 30
