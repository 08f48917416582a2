"""The TF-IDF baseline beside every run, the BERT + baseline ensemble in every backend, and the
language-fit warning (issue 17)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import make_tiny_bert, multilabel_rows, sentiment_rows, train_args, write_csv

from bertcls.cli import main
from bertcls.core import baseline, ensemble
from bertcls.core.data import TextData
from bertcls.core.errors import UserError
from bertcls.core.language import cjk_share, language_fit

TEXTS = ["a good and lovely film", "a dull and boring plot", "so happy", "really awful acting"]


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, tiny_bert, sentiment_files):
    out = tmp_path_factory.mktemp("ens") / "run"
    assert main(train_args(tiny_bert, sentiment_files, out, "--ensemble", "--epochs", "1")) == 0
    return out


def _data(rows: list[dict], multi: bool = False) -> TextData:
    labels = [r["label"].split(";") if multi else r["label"] for r in rows]
    return TextData([r["text"] for r in rows], None, labels)


def test_every_run_reports_the_baseline(trained_tiny, capsys):
    m = json.loads((trained_tiny / "metrics.json").read_text())
    base = m["baseline"]
    assert base["model"] == baseline.NAME and base["analyzer"] == "word n-grams 1-2"
    assert base["C"] in baseline.C_GRID and 0 <= base["test"]["accuracy"] <= 1
    assert base["test"]["n"] == m["test"]["n"] == 40
    assert (trained_tiny / baseline.BASELINE_FILE).is_file()
    meta = json.loads((trained_tiny / "bertcls.json").read_text())
    assert meta["baseline"]["metrics"]["test"]["accuracy"] == base["test"]["accuracy"]
    assert "ensemble" not in meta  # only with --ensemble
    card = (trained_tiny / "README.md").read_text()
    assert "## Against a classical baseline" in card and "points" in card and "TF-IDF baseline | test" in card


def test_summary_prints_the_baseline_row_and_the_verdict(ensemble_run, capsys):
    from bertcls.core.report import summary_table

    result = json.loads((ensemble_run / "metrics.json").read_text())
    result["output_dir"] = str(ensemble_run)
    lines = summary_table(result).splitlines()
    assert lines[1].split()[0] == "test"
    assert lines[2].split()[:3] == ["test", "TF-IDF", "40"]
    assert lines[3].split()[:3] == ["test", "ensemble", "40"]
    assert lines[4].startswith("BERT ") and "TF-IDF" in lines[4] and "ensemble (stack)" in lines[4]


def test_no_baseline_and_its_conflict_with_ensemble(tmp_path, tiny_bert, sentiment_files, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_bert, sentiment_files, out, "--no-baseline", "--epochs", "1")) == 0
    assert "baseline" not in json.loads((out / "metrics.json").read_text())
    assert not (out / baseline.BASELINE_FILE).exists()
    capsys.readouterr()
    code = main(train_args(tiny_bert, sentiment_files, tmp_path / "x", "--no-baseline", "--ensemble"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--ensemble" in err[0] and "--no-baseline" in err[0]


def test_ensemble_weight_is_chosen_on_validation_and_never_worse_there():
    rows = sentiment_rows(60, seed=5)
    val = _data(rows)
    labels = ["negative", "positive"]
    truth = np.array([[0.0, 1.0] if r["label"] == "positive" else [1.0, 0.0] for r in rows])
    coin = np.full_like(truth, 0.5) + np.random.default_rng(0).normal(0, 0.1, truth.shape) * [1, -1]
    good = 0.8 * truth + 0.1
    # a useless BERT and a good baseline: the weight goes to the baseline, and the reverse
    assert ensemble.fit_weight(coin, good, val, labels, False, "accuracy").weight == 1.0
    assert ensemble.fit_weight(good, coin, val, labels, False, "accuracy").weight == 0.0
    # each wrong (unsure) on different rows, right (sure) elsewhere: only a mix gets every row right
    p_a, p_b = np.full(60, 0.9), np.full(60, 0.9)
    p_a[:10], p_b[10:20] = 0.4, 0.4
    a, b = (np.where(truth == 1, p[:, None], 1 - p[:, None]) for p in (p_a, p_b))
    picked, m = ensemble.fit(a, b, val, labels, False, "accuracy", "weight")
    assert picked.method == "weight" and 0 < picked.weight < 1 and m["accuracy"] == 1.0
    stacked, m = ensemble.fit(a, b, val, labels, False, "accuracy", "stack")
    assert stacked.method == "stack" and m["accuracy"] == 1.0


def test_stacking_matches_sklearn_and_falls_back_without_every_class():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    rows = sentiment_rows(80, seed=9)
    val, labels = _data(rows), ["negative", "positive"]
    y = np.array([r["label"] == "positive" for r in rows], dtype=int)
    noisy = np.clip(0.5 + (y - 0.5) * rng.uniform(-0.2, 1.0, 80), 0.01, 0.99)
    bert, base = np.c_[1 - noisy, noisy], np.c_[1 - 0.5 * (noisy + y), 0.5 * (noisy + y)]
    ens = ensemble.fit_stack(bert, base, val, labels, False)
    x = np.log(np.clip(np.c_[bert, base], ensemble.FLOOR, 1))
    ref = LogisticRegression(C=ensemble.STACK_C, max_iter=1000).fit(x, y).predict_proba(x)
    assert np.allclose(ens.combine(bert, base, False), ref, atol=1e-6)
    again = ensemble.Ensemble.from_meta(json.loads(json.dumps(ens.as_meta())))
    assert np.allclose(again.combine(bert, base, False), ref, atol=1e-6)
    one_class = _data([r for r in rows if r["label"] == "positive"])
    keep = y == 1
    assert ensemble.fit_stack(bert[keep], base[keep], one_class, labels, False) is None
    assert ensemble.fit(bert[keep], base[keep], one_class, labels, False, "accuracy")[0].method == "weight"


def test_classifier_mixes_the_baseline_in_every_backend(ensemble_run, tmp_path):
    from bertcls import TextClassifier

    copy = tmp_path / "model"
    shutil.copytree(ensemble_run, copy)
    meta = json.loads((copy / "bertcls.json").read_text())
    assert meta["ensemble"]["method"] == "stack" and len(meta["ensemble"]["coef"]) == 2
    meta["ensemble"] = {"method": "weight", "weight": 0.4}  # a weight that shows both parts
    (copy / "bertcls.json").write_text(json.dumps(meta))
    clf = TextClassifier.from_pretrained(copy, device="cpu")
    alone = TextClassifier.from_pretrained(copy, device="cpu", ensemble=False)
    model_p, base_p = clf.component_proba(TEXTS)
    assert np.allclose(alone.predict_proba(TEXTS), model_p, atol=1e-6)
    assert np.allclose(clf.predict_proba(TEXTS), 0.6 * model_p + 0.4 * base_p, atol=1e-6)
    assert not np.allclose(model_p, base_p, atol=1e-3)
    assert clf.predict(TEXTS[0]) in clf.labels
    # saved elsewhere, the baseline travels with the model
    again = tmp_path / "again"
    clf.save_pretrained(again)
    reloaded = TextClassifier.from_pretrained(again, device="cpu")
    assert np.allclose(reloaded.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)
    pytest.importorskip("onnxruntime")
    assert main(["export", str(copy), "--format", "onnx"]) == 0
    onnx = TextClassifier.from_pretrained(copy, backend="onnx", threads=1)
    assert onnx.ensemble.weight == 0.4
    assert np.abs(onnx.predict_proba(TEXTS) - clf.predict_proba(TEXTS)).max() < 1e-4


def test_predict_evaluate_and_serve_use_the_ensemble(ensemble_run, sentiment_files, tmp_path, capsys):
    from bertcls import TextClassifier

    clf = TextClassifier.from_pretrained(ensemble_run, device="cpu")
    out = tmp_path / "pred.csv"
    args = ["predict", str(ensemble_run), "--file", str(sentiment_files["test"]), "--output", str(out)]
    assert main([*args, "--top-k", "0"]) == 0
    import csv

    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    expect = clf.predict_proba([r["text"] for r in rows])[:, clf.labels.index("positive")]
    got = [float(r["pred_score"] if r["pred_label"] == "positive" else r["pred_score_2"]) for r in rows]
    assert np.abs(np.array(got) - expect).max() < 1e-3

    ev = tmp_path / "ev"
    args = ["evaluate", str(ensemble_run), "--file", str(sentiment_files["test"]), "--output-dir", str(ev)]
    assert main([*args, "--baseline"]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    trained = json.loads((ensemble_run / "metrics.json").read_text())
    assert m["accuracy"] == pytest.approx(trained["ensemble"]["test"]["accuracy"])
    assert m["baseline"]["accuracy"] == pytest.approx(trained["baseline"]["test"]["accuracy"])
    assert m["model_alone"]["accuracy"] == pytest.approx(trained["test"]["accuracy"])
    printed = capsys.readouterr().out.splitlines()
    head = next(i for i, ln in enumerate(printed) if ln.startswith("split"))
    assert [ln.split()[0] for ln in printed[head + 1 : head + 4]] == ["evaluated", "model", "TF-IDF"]

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bertcls.deploy.serve import ServeConfig, create_app

    with TestClient(
        create_app(clf, ServeConfig(model_dir=str(ensemble_run))), base_url="http://localhost"
    ) as c:
        assert c.get("/v1/model").json()["ensemble"]["method"] == "stack"
        r = c.post("/v1/classify", json={"texts": [TEXTS[0]], "top_k": 2})
        assert r.status_code == 200, r.text
        scores = {x["label"]: x["score"] for x in r.json()["results"][0]["top_k"]}
    want = float(clf.predict_proba(TEXTS[0])[clf.labels.index("positive")])
    assert scores["positive"] == pytest.approx(want, abs=1e-4)


class Untrusted:
    def __init__(self):
        self.payload = "anything"


@pytest.mark.parametrize("damage", ["missing", "corrupt", "foreign", "untrusted"])
def test_missing_or_corrupt_baseline_is_one_line_exit_2(
    ensemble_run, sentiment_files, tmp_path, capsys, damage
):
    copy = tmp_path / "model"
    shutil.copytree(ensemble_run, copy)
    path = copy / baseline.BASELINE_FILE
    if damage == "missing":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(path.read_bytes()[:200])
    else:  # valid skops files: another estimator, and an object of a type skops does not trust
        import skops.io as sio
        from sklearn.preprocessing import FunctionTransformer

        sio.dump(FunctionTransformer(func=np.exp) if damage == "foreign" else Untrusted(), str(path))
    capsys.readouterr()
    code = main(
        ["predict", str(copy), "--file", str(sentiment_files["test"]), "--output", str(tmp_path / "p.csv")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and baseline.BASELINE_FILE in err[0] and "--no-ensemble" in err[0]
    assert not (tmp_path / "p.csv").exists()
    # the model alone still works
    assert (
        main(
            [
                "predict",
                str(copy),
                "--file",
                str(sentiment_files["test"]),
                "--output",
                str(tmp_path / "p.csv"),
                "--no-ensemble",
            ]
        )
        == 0
    )


def test_multilabel_baseline_and_ensemble_tune_thresholds(tmp_path, tiny_bert):
    from bertcls import TextClassifier

    rows = multilabel_rows(300, seed=11)
    files = {
        "train": write_csv(tmp_path / "train.csv", rows[:200]),
        "dev": write_csv(tmp_path / "dev.csv", rows[200:250]),
        "test": write_csv(tmp_path / "test.csv", rows[250:]),
    }
    out = tmp_path / "run"
    assert main(train_args(tiny_bert, files, out, "--multi-label", "--ensemble", "--epochs", "1")) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["baseline"]["thresholds"]) == 2 and m["baseline"]["test"]["f1_micro"] > 0.8
    meta = json.loads((out / "bertcls.json").read_text())
    clf = TextClassifier.from_pretrained(out, device="cpu")
    assert np.allclose(clf.thresholds, meta["ensemble"]["thresholds"])
    assert all(isinstance(p, list) for p in clf.predict(TEXTS))


def test_baseline_uses_characters_for_chinese():
    rows = [{"text": t, "label": lab} for t, lab in [("这家酒店很好", "pos"), ("服务很差劲", "neg")] * 20]
    base, report = baseline.fit(_data(rows), _data(rows), ["neg", "pos"], False, "accuracy")
    assert report["analyzer"] == "char n-grams 1-3" and report["validation"]["accuracy"] == 1.0
    assert base.predict_proba(["酒店很好"]).argmax() == 1


def test_language_fit_warns_for_chinese_text_and_an_english_vocabulary(tiny_bert, tmp_path):
    from transformers import AutoTokenizer

    zh = ["这部电影非常好看，演员很棒", "剧情无聊，浪费时间"] * 10
    en = [r["text"] for r in sentiment_rows(20)]
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    assert cjk_share(zh) == 1.0 and cjk_share(en) == 0.0
    fit = language_fit(zh, tok, "tiny")
    assert fit.warning and "[UNK]" in fit.warning and "Chinese" in fit.warning and "--ensemble" in fit.warning
    assert fit.unk_rate > 0.5
    assert language_fit(en, tok, "tiny").warning is None
    zh_bert = make_tiny_bert(tmp_path / "zh", words=sorted(set("".join(zh))))
    assert language_fit(zh, AutoTokenizer.from_pretrained(zh_bert), "zh").warning is None


def test_language_fit_warning_reaches_the_run(tmp_path, tiny_bert, capsys):
    rows = [{"text": t, "label": lab} for t, lab in [("这家酒店很好", "pos"), ("服务很差劲", "neg")] * 30]
    files = {
        "train": write_csv(tmp_path / "train.csv", rows[:40]),
        "dev": write_csv(tmp_path / "dev.csv", rows[40:50]),
        "test": write_csv(tmp_path / "test.csv", rows[50:]),
    }
    out = tmp_path / "run"
    assert main(train_args(tiny_bert, files, out, "--epochs", "1")) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["train"]["language_fit"]["unk_rate"] > 0.5
    assert any("may not be able to read this data" in w for w in m["validation"]["warnings"])
    assert "may not be able to read this data" in capsys.readouterr().out
    with pytest.raises(UserError):
        baseline.load(out / "nothing.skops", ["neg", "pos"], False)


def test_a_large_vocabulary_saves_small_and_loads_fast(tmp_path):
    """Regression: a fitted vocabulary made skops take 13 s / 89 MB to save and 10 s to load on
    ChnSentiCorp; hashed n-grams keep the file and the load time flat in the vocabulary size."""
    import time

    rng = np.random.default_rng(0)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 250)]
    rows = [{"text": "".join(rng.choice(chars, 40)), "label": "pos" if i % 2 else "neg"} for i in range(6000)]
    base, report = baseline.fit(_data(rows), _data(rows[:200]), ["neg", "pos"], False, "accuracy")
    assert report["features"] > 50_000  # many distinct character n-grams
    path = tmp_path / baseline.BASELINE_FILE
    baseline.save(base, path)
    assert path.stat().st_size < 5_000_000
    t0 = time.perf_counter()
    loaded = baseline.load(path, ["neg", "pos"], False)
    assert time.perf_counter() - t0 < 2
    texts = [r["text"] for r in rows[:20]]
    assert np.allclose(loaded.predict_proba(texts), base.predict_proba(texts))


def test_a_baseline_that_cannot_be_fitted_never_costs_the_model(tmp_path, tiny_bert, capsys):
    """Every n-gram in one training text only: the model is saved, the baseline is reported skipped."""
    words = [
        "good",
        "bad",
        "fine",
        "awful",
        "great",
        "poor",
        "nice",
        "sad",
        "happy",
        "dull",
        "lovely",
        "ugly",
    ]
    rows = [{"text": w, "label": "pos" if i % 2 == 0 else "neg"} for i, w in enumerate(words)]
    files = {
        "train": write_csv(tmp_path / "train.csv", rows[:8]),
        "dev": write_csv(tmp_path / "dev.csv", rows[8:]),
        "test": write_csv(tmp_path / "test.csv", rows[8:]),
    }
    out = tmp_path / "run"
    assert main(train_args(tiny_bert, files, out, "--epochs", "1", "--ensemble")) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "baseline" not in m and "no n-gram shared" in m["baseline_skipped"]
    assert (out / "model.safetensors").is_file() and not (out / baseline.BASELINE_FILE).exists()
    assert "warning: no TF-IDF baseline: the TF-IDF baseline has no n-gram" in capsys.readouterr().out
