"""`bertcls export`: ONNX files and report, parity with PyTorch, int8, refusal of bad exports, the onnx backend."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bertcls.cli import main
from bertcls.core.errors import UserError

TEXTS = [
    "the film was great great",
    "the plot was awful awful",
    "boring",
    "nice nice lovely story",
    " ".join(["the movie was really very good and the acting is so fine"] * 6),
]


@pytest.fixture(scope="module")
def model_copy(trained_tiny, tmp_path_factory) -> Path:
    """A private copy: exports go inside the model directory, and other tests check trained_tiny's files."""
    dst = tmp_path_factory.mktemp("export") / "model"
    shutil.copytree(trained_tiny, dst)
    return dst


@pytest.fixture(scope="module")
def fp32_export(model_copy) -> Path:
    assert main(["export", str(model_copy), "--format", "onnx"]) == 0
    return model_copy / "onnx"


@pytest.fixture(scope="module")
def int8_export(model_copy, fp32_export) -> Path:
    assert main(["export", str(model_copy), "--quantize", "int8"]) == 0
    return model_copy / "onnx-int8"


def test_export_files_report_and_dynamic_axes(fp32_export, model_copy):
    import onnx

    assert {p.name for p in fp32_export.iterdir()} == {"model.onnx", "export_report.json"}
    report = json.loads((fp32_export / "export_report.json").read_text())
    parity = report["parity"]
    # the run's own validation texts (40 here) and 16 generated ones of every length
    assert parity["samples"].endswith("dev.csv and 16 generated from the vocabulary"), parity["samples"]
    assert parity["n"] == 40 + 16 and parity["max_abs_diff"] <= 1e-3 and parity["agreement"] == 1.0
    assert parity["tokens_max"] > parity["tokens_min"]  # varied lengths, padding exercised
    assert report["quantize"] == "none" and report["labels"] == ["negative", "positive"]
    assert report["weights"]["sha256"] and len(report["weights"]["sha256"]) == 64
    graph = onnx.load(str(fp32_export / "model.onnx")).graph
    dims = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims == {n: ["batch", "sequence"] for n in ("input_ids", "attention_mask", "token_type_ids")}
    assert [o.name for o in graph.output] == ["logits"]
    assert not list(model_copy.glob(".onnx*"))  # no staging leftovers


def test_onnx_backend_matches_torch(fp32_export, model_copy):
    from bertcls import TextClassifier

    torch_clf = TextClassifier.from_pretrained(model_copy)
    onnx_clf = TextClassifier.from_pretrained(model_copy, backend="onnx", threads=1)
    assert onnx_clf.backend == "onnx"
    a, b = torch_clf.logits(TEXTS), onnx_clf.logits(TEXTS)
    assert b.dtype == np.float32 and b.shape == (len(TEXTS), 2)
    assert np.abs(a - b).max() < 1e-4
    assert onnx_clf.predict(TEXTS) == torch_clf.predict(TEXTS)
    onnx_clf.batch_size = 2  # length-sorted batches must still come back in input order
    assert np.abs(onnx_clf.logits(TEXTS) - a).max() < 1e-4
    assert onnx_clf.predict_proba([]).shape == (0, 2)


def test_occlusion_explains_on_the_onnx_backend(fp32_export, model_copy):
    from bertcls import TextClassifier

    text = "the film was great and lovely"
    onnx = TextClassifier.from_pretrained(model_copy, backend="onnx").explain(text, method="occlusion")
    torch = TextClassifier.from_pretrained(model_copy).explain(text, method="occlusion")
    assert [w.text for w in onnx.words] == text.split()
    assert np.abs(np.array(onnx.targets[0].scores) - torch.targets[0].scores).max() < 1e-5


def test_int8_export(int8_export, fp32_export, model_copy):
    from bertcls import TextClassifier

    report = json.loads((int8_export / "export_report.json").read_text())
    assert report["quantize"] == "int8" and report["parity"]["agreement"] >= 0.95
    assert report["thresholds"]["max_diff"] is None
    assert (int8_export / "model.onnx").stat().st_size < (fp32_export / "model.onnx").stat().st_size
    clf = TextClassifier.from_pretrained(model_copy, backend="onnx", onnx_dir="onnx-int8")
    assert "int8" in repr(clf.model)
    torch_labels = TextClassifier.from_pretrained(model_copy).predict(TEXTS)
    assert sum(x == y for x, y in zip(clf.predict(TEXTS), torch_labels)) >= len(TEXTS) - 1


def test_int8_scores_a_text_the_same_whatever_it_is_batched_with(int8_export, model_copy):
    """Regression: dynamic int8 takes activation scales from the whole batch, so a text's score depended on
    its batch-mates (1% of SST-2 labels changed between the local and the Ray engine). The int8 backend
    now runs each text alone, several at once, and a text's logits are exactly the same in any company."""
    import onnxruntime as ort

    from bertcls import TextClassifier

    clf = TextClassifier.from_pretrained(model_copy, backend="onnx", onnx_dir="onnx-int8", threads=2)
    assert clf.model.workers == 2  # two one-thread calls at once
    others = [f"{w} {w} story" for w in ("great", "awful", "boring", "lovely")] * 5
    alone = np.stack([clf.logits([t])[0] for t in TEXTS])
    for company in (TEXTS, TEXTS[::-1], others[:7] + TEXTS + others[7:]):
        got = clf.logits(company)
        assert np.array_equal(np.stack([got[company.index(t)] for t in TEXTS]), alone)
    # what it fixes: the same int8 graph run on padded batches does depend on the company
    session = ort.InferenceSession(str(int8_export / "model.onnx"), providers=["CPUExecutionProvider"])
    enc = clf.encode(TEXTS)
    width = max(len(e["input_ids"]) for e in enc)
    feeds = {"input_ids": np.zeros((len(enc), width), np.int64), "attention_mask": np.zeros((len(enc), width), np.int64),
             "token_type_ids": np.zeros((len(enc), width), np.int64)}  # fmt: skip
    for i, e in enumerate(enc):
        feeds["input_ids"][i, : len(e["input_ids"])] = e["input_ids"]
        feeds["attention_mask"][i, : len(e["input_ids"])] = 1
    batched = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]
    assert not np.allclose(batched, alone, atol=1e-6)


def test_int8_with_one_thread_runs_texts_inline(int8_export, model_copy):
    """--threads 1 (a Ray actor, a one-thread server): the texts run one after another in the calling
    thread, with no thread pool (a hand-off per text cost 0.5-6% of one-thread int8 throughput in
    bench/int8_one_thread.py), and score exactly as with two at once."""
    from bertcls import TextClassifier

    one = TextClassifier.from_pretrained(model_copy, backend="onnx", onnx_dir="onnx-int8", threads=1)
    two = TextClassifier.from_pretrained(model_copy, backend="onnx", onnx_dir="onnx-int8", threads=2)
    assert one.model.workers == 1
    assert np.array_equal(one.logits(TEXTS), two.logits(TEXTS))
    assert one.model._pool is None and two.model._pool is not None


def test_failed_parity_check_writes_nothing(model_copy, tmp_path, monkeypatch, capsys):
    from bertcls.deploy import onnx_backend

    real = onnx_backend.OnnxModel.logits
    # A broken export: labels swapped. The check must catch it and leave no directory behind.
    monkeypatch.setattr(onnx_backend.OnnxModel, "logits", lambda self, *a: real(self, *a)[:, ::-1].copy())
    out = tmp_path / "bad"
    assert main(["export", str(model_copy), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not match PyTorch" in err and "label agreement" in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_unreadable_run_config_falls_back_to_generated_texts(model_copy, monkeypatch):
    """A run_config.yaml the export cannot read (permissions) means no recorded data file, not a crash."""
    from pathlib import Path

    from bertcls.deploy.export import recorded_data_file

    assert recorded_data_file(str(model_copy)) is not None  # the fixture's run recorded its files
    real = Path.read_bytes

    def denied(self):
        if self.name == "run_config.yaml":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert recorded_data_file(str(model_copy)) is None


def test_int8_refused_on_generated_texts_suggests_real_ones(model_copy, tmp_path, monkeypatch, capsys):
    """A model directory without the run's data files checks on generated texts, where int8's label
    agreement is noise: a refusal says to pass --sample-file."""
    import shutil

    from bertcls.deploy import onnx_backend

    bare = tmp_path / "hf-dir"
    shutil.copytree(model_copy, bare, ignore=shutil.ignore_patterns("run_config.yaml", "onnx*"))
    real = onnx_backend.OnnxModel.logits
    monkeypatch.setattr(onnx_backend.OnnxModel, "logits", lambda self, *a: real(self, *a)[:, ::-1].copy())
    assert main(["export", str(bare), "--quantize", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "the sample texts were generated from the vocabulary: pass --sample-file with real texts"
    )
    assert len(err.splitlines()) == 1 and not (bare / "onnx-int8").exists()


def test_impossible_threshold_fails(model_copy, tmp_path, monkeypatch, capsys):
    from bertcls.deploy import onnx_backend

    real = onnx_backend.OnnxModel.logits
    # Every graph is off by 1e-6 (labels unchanged): --max-diff alone must refuse it. Without the
    # offset an exact match would be a legitimate pass, and the test could not fail.
    monkeypatch.setattr(onnx_backend.OnnxModel, "logits", lambda self, *a: real(self, *a) + 1e-6)
    out = tmp_path / "strict"
    assert main(["export", str(model_copy), "--output-dir", str(out), "--max-diff", "1e-9"]) == 2
    err = capsys.readouterr().err
    assert "> --max-diff 1e-09" in err and "label agreement" not in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_predict_cli_onnx_equals_torch(fp32_export, model_copy, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    outs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.csv"
        assert (
            main(
                [
                    "predict",
                    str(model_copy),
                    "--file",
                    str(src),
                    "--backend",
                    backend,
                    "--threads",
                    "1",
                    "--output",
                    str(out),
                ]
            )
            == 0
        )
        with open(out, newline="") as f:
            outs[backend] = [r["label"] for r in csv.DictReader(f)]
    assert outs["onnx"] == outs["torch"] and len(outs["torch"]) == len(TEXTS)


def test_sample_file_and_report_numbers(model_copy, tmp_path, capsys):
    sample = tmp_path / "samples.txt"
    sample.write_text("\n".join(TEXTS * 4) + "\n")
    out = tmp_path / "from-file"
    assert (
        main(
            [
                "export",
                str(model_copy),
                "--output-dir",
                str(out),
                "--sample-file",
                str(sample),
                "--no-optimize",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "parity vs PyTorch on 20 texts" in printed and "max |logit diff|" in printed
    report = json.loads((out / "export_report.json").read_text())
    assert report["graph"] == "plain" and report["parity"]["samples"] == str(sample)


def test_missing_or_stale_export_is_a_clear_error(trained_tiny, fp32_export, model_copy):
    from bertcls import TextClassifier

    with pytest.raises(UserError, match="bertcls export"):
        TextClassifier.from_pretrained(trained_tiny, backend="onnx")
    stale = model_copy / "onnx-stale"
    shutil.copytree(fp32_export, stale)
    report = json.loads((stale / "export_report.json").read_text())
    report["weights"]["sha256"] = "0" * 64
    (stale / "export_report.json").write_text(json.dumps(report))
    with pytest.raises(UserError, match="other weights"):
        TextClassifier.from_pretrained(model_copy, backend="onnx", onnx_dir=str(stale))
    with pytest.raises(UserError, match="no model.onnx"):
        TextClassifier.from_pretrained(model_copy, backend="onnx", onnx_dir="nowhere")


def test_missing_dependency_names_the_extra(model_copy, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes `import onnxscript` fail
    assert main(["export", str(model_copy), "--output-dir", str(model_copy / "x")]) == 2
    assert "pip install 'bertcls[export]'" in capsys.readouterr().err


def test_vocab_texts_vary_in_length():
    from transformers import BertTokenizerFast

    from bertcls.deploy.export import vocab_texts

    tok = BertTokenizerFast(
        vocab={
            w: i
            for i, w in enumerate(
                ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "##s"]
            )
        }
    )
    texts = vocab_texts(tok, 30, 40, seed=3)
    lengths = sorted(len(t.split()) for t in texts)
    assert len(texts) == 30 and lengths[0] == 1 and lengths[-1] > 40  # past max_length: truncation checked
    assert set(" ".join(texts).split()) <= {"good", "bad", "film"}
    assert texts == vocab_texts(tok, 30, 40, seed=3)
