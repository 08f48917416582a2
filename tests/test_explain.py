"""`bertcls explain` and TextClassifier.explain: Integrated Gradients (captum) and occlusion on tiny BERTs,
words mapped back to the user's characters, the HTML report, the CLI and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import make_tiny_bert, train_args, write_csv

pytest.importorskip("captum")


@pytest.fixture(scope="module")
def clf(trained_tiny):
    from bertcls import TextClassifier

    return TextClassifier.from_pretrained(trained_tiny, device="cpu")


def base_probability(clf, text: str, label: int) -> float:
    """p(label) for the IG baseline: [CLS] [MASK]... [SEP]."""
    ids = clf.tokenizer(text)["input_ids"]
    mask = clf.tokenizer.mask_token_id
    row = {"input_ids": [ids[0]] + [mask] * (len(ids) - 2) + [ids[-1]], "token_type_ids": [0] * len(ids)}
    return float(clf.probabilities(clf.row_logits([row]))[0, label])


def test_ig_scores_add_up_to_the_probability_change(clf):
    text = "the film was great great and lovely"
    e = clf.explain(text, method="ig", steps=64)
    t = e.targets[0]
    label = clf.labels.index(t.label)
    assert t.label == clf.predict(text) == e.prediction
    assert t.completeness_error < 1e-3
    assert sum(t.scores) == pytest.approx(t.probability - base_probability(clf, text, label), abs=2e-3)
    assert e.top(1)[0][0] in {"great", "lovely"}  # the trained tiny model keys on the sentiment words


def test_occlusion_score_is_the_drop_when_the_word_is_deleted(clf):
    text = "the film was great and boring"
    e = clf.explain(text, method="occlusion")
    t = e.targets[0]
    p_all = clf.predict_proba(text)[clf.labels.index(t.label)]
    for i, w in enumerate(e.words):
        rest = " ".join(x for j, x in enumerate(text.split()) if j != i)
        dropped = clf.predict_proba(rest)[clf.labels.index(t.label)]
        assert t.scores[i] == pytest.approx(p_all - dropped, abs=1e-5), w.text


def test_english_words_map_back_to_the_exact_characters(clf):
    text = "The  MOVIE was goodly,   really GREAT!! (xyz)"
    e = clf.explain(text, method="occlusion")
    starts = [w.start for w in e.words]
    assert starts == sorted(starts)
    for w in e.words:
        assert text[w.start : w.end] == w.text and w.text.strip() == w.text
    assert "".join(w.text for w in e.words) == "".join(text.split())  # every non-space character, once
    assert "goodly" in [w.text for w in e.words]  # good + ##ly back onto one word
    assert not e.truncated


def test_pair_words_point_into_the_pair(clf):
    e = clf.explain("great film", "awful plot", method="ig")
    pair_words = [w for w in e.words if w.segment == 1]
    assert [w.text for w in pair_words] == ["awful", "plot"]
    assert all("awful plot"[w.start : w.end] == w.text for w in pair_words)


@pytest.fixture(scope="module")
def zh_clf(tmp_path_factory):
    from bertcls import TextClassifier
    from bertcls.cli import main

    d = tmp_path_factory.mktemp("zh")
    model = make_tiny_bert(d / "bert", words=list("这家酒店很好服务差房间干净吵"))
    rows = [
        {"text": t, "label": lab}
        for t, lab in [("酒店很好", "好"), ("服务差", "差"), ("房间干净", "好"), ("很吵", "差")] * 10
    ]
    files = {k: write_csv(d / f"{k}.csv", rows) for k in ("train", "dev", "test")}
    assert main(train_args(model, files, d / "run", "--epochs", "1", "--no-baseline")) == 0
    return TextClassifier.from_pretrained(d / "run", device="cpu")


def test_chinese_characters_and_jieba_words_map_back(zh_clf):
    pytest.importorskip("jieba")
    text = "这家酒店很好！服务 差。"
    chars = zh_clf.explain(text, method="ig")
    assert [w.text for w in chars.words] == [c for c in text if not c.isspace()]
    assert all(text[w.start : w.end] == w.text for w in chars.words)
    words = zh_clf.explain(text, method="ig", zh_words="jieba")
    assert "酒店" in [w.text for w in words.words]
    assert all(text[w.start : w.end] == w.text for w in words.words)
    by_char = dict(zip([(w.start, w.end) for w in chars.words], chars.targets[0].scores))
    for w, s in zip(words.words, words.targets[0].scores):  # IG is additive: a word = its characters
        assert s == pytest.approx(
            sum(v for (a, b), v in by_char.items() if w.start <= a and b <= w.end), abs=1e-6
        )


def test_multi_label_is_explained_per_label(tmp_path, tiny_bert):
    from bertcls import TextClassifier
    from bertcls.cli import main

    rows = [{"text": "great music", "label": "music;good"}, {"text": "awful sport", "label": "sport"}] * 20
    files = {k: write_csv(tmp_path / f"{k}.csv", rows) for k in ("train", "dev", "test")}
    args = train_args(tiny_bert, files, tmp_path / "ml", "--multi-label", "--epochs", "1", "--no-baseline")
    assert main(args) == 0
    clf = TextClassifier.from_pretrained(tmp_path / "ml", device="cpu")
    e = clf.explain("great music", method="occlusion")
    predicted = clf.predict("great music") or [clf.labels[int(np.argmax(clf.predict_proba("great music")))]]
    assert [t.label for t in e.targets] == sorted(predicted, key=clf.labels.index)
    one = clf.explain("great music", target="sport", method="ig")
    assert [t.label for t in one.targets] == ["sport"] and len(one.targets[0].scores) == len(one.words)


def test_html_is_self_contained_and_names_the_prediction(clf):
    e = clf.explain("awful awful plot <b>", method="occlusion")
    page = e.to_html()
    assert "<script" not in page and "http" not in page and "<link" not in page
    assert f"predicted: {e.prediction}" in page
    assert ">&lt;</mark>" in page and page.count("<mark") == len(e.words)  # the user's "<" escaped


def test_long_text_is_explained_in_its_first_window_and_says_so(clf):
    e = clf.explain(" ".join(["great film"] * 40), method="occlusion")
    assert e.truncated and "window" in e.note
    assert max(w.end for w in e.words) < len(" ".join(["great film"] * 40))


def test_cli_text_file_and_summary(trained_tiny, sentiment_files, tmp_path, capsys):
    from bertcls.cli import main

    out = tmp_path / "ex"
    assert main(["explain", str(trained_tiny), "--text", "awful boring plot", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "awful" in printed
    rec = json.loads((out / "explanations.jsonl").read_text())
    assert rec["text"] == "awful boring plot" and len(rec["targets"][0]["scores"]) == 3
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    assert (out / "explain_config.yaml").is_file()
    page = tmp_path / "why.html"
    again = ["explain", str(trained_tiny), "--text", "good film", "--output", str(page)]
    assert main([*again, "--output-dir", str(tmp_path / "ex3")]) == 0  # not into the shared model dir
    assert "predicted:" in page.read_text()
    assert main([*again, "--output-dir", str(tmp_path / "ex4")]) == 2  # an existing file is never replaced
    assert not (tmp_path / "ex4").exists()
    assert "already exists" in capsys.readouterr().err
    out2 = tmp_path / "ex2"
    args = ["explain", str(trained_tiny), "--file", str(sentiment_files["test"]), "--summary"]
    assert main([*args, "--method", "occlusion", "--max-texts", "12", "--output-dir", str(out2)]) == 0
    assert len((out2 / "explanations.jsonl").read_text().splitlines()) == 12
    summary = (out2 / "summary.csv").read_text().splitlines()
    assert summary[0] == "label,rank,word,mean_score,texts" and len(summary) > 2
    assert (out2 / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert "explained the first 12 of 40 rows" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, phrase",
    [
        (["--text", "good", "--target", "nope"], "not a label of this model"),
        (["--text", "   "], "is empty"),
        (["--text", "good", "--backend", "onnx", "--method", "ig"], "needs gradients"),
        (["--text", "good", "--method", "shap"], "--method"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(trained_tiny, tmp_path, capsys, extra, phrase):
    from bertcls.cli import main

    assert main(["explain", str(trained_tiny), "--output-dir", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert phrase in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cli_empty_row_names_file_line_and_column(trained_tiny, tmp_path, capsys):
    from bertcls.cli import main

    f = write_csv(tmp_path / "in.csv", [{"text": "good"}, {"text": " "}])
    assert main(["explain", str(trained_tiny), "--file", str(f), "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "in.csv: line 3, column 'text'" in err


def test_evaluate_explain_errors_fills_the_most_confident_mistakes(trained_tiny, tmp_path):
    import csv

    from helpers import sentiment_rows

    from bertcls.cli import main

    flip = {"positive": "negative", "negative": "positive"}
    rows = [{"text": r["text"], "label": flip[r["label"]]} for r in sentiment_rows(12, seed=5)]
    f = write_csv(tmp_path / "flipped.csv", rows)
    out = tmp_path / "ev"
    assert (
        main(
            [
                "evaluate",
                str(trained_tiny),
                "--file",
                str(f),
                "--explain-errors",
                "3",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    got = list(csv.DictReader(open(out / "misclassified.csv", encoding="utf-8")))
    explained = [r for r in got if r["why"]]
    assert len(explained) == 3
    conf = lambda r: max(float(r["p_negative"]), float(r["p_positive"]))  # noqa: E731
    assert min(conf(r) for r in explained) >= max(conf(r) for r in got if not r["why"])
    for r in explained:  # the top words are words of that text
        words = [part.split(" (")[0] for part in r["why"].split("; ")]
        assert words and all(w in r["text"].split() for w in words)


def test_summary_ranks_words_by_mean_score_and_skips_punctuation():
    from bertcls.analysis.attribution import Attribution, Explanation, Word
    from bertcls.analysis.report import summary

    def ex(words, scores):
        ws, at = [], 0
        for w in words:
            ws.append(Word(w, at, at + len(w)))
            at += len(w) + 1
        return Explanation(
            " ".join(words), None, "ig", "pos", {"pos": 0.9}, ws, [Attribution("pos", 0.9, scores)]
        )

    table = summary(
        [ex(["Great", "!", "plot"], [0.5, 0.9, 0.1]), ex(["great", "plot", "!"], [0.3, 0.2, 0.9])], top=2
    )
    assert table == {"pos": [("great", pytest.approx(0.4), 2), ("plot", pytest.approx(0.15), 2)]}
