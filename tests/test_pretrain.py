"""`bertcls pretrain` end to end on tiny models: files promised, learning, resume, fine-tuning, errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from helpers import FILLER, NEG, POS, poison_after
from safetensors.torch import load_file

from bertcls.cli import main
from bertcls.pretrain.pretrain import RUN_FILES

SUBJECTS = ["the film", "the movie", "the story", "the acting", "the plot"]


def english_corpus(path: Path, n_docs: int = 60, seed: int = 0) -> Path:
    """Documents of templated sentences over the tiny-BERT vocabulary (so both tokenizers cover it)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        mood = POS if rng.random() < 0.5 else NEG
        sents = [
            f"{rng.choice(SUBJECTS).capitalize()} was {rng.choice(['very', 'really', 'so'])} "
            f"{rng.choice(mood)}. It is {rng.choice(mood)} and {rng.choice(FILLER)}."
            for _ in range(rng.randint(2, 6))
        ]
        docs.append(" ".join(sents))
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return english_corpus(tmp_path_factory.mktemp("corpus") / "en.txt")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("tok") / "en"
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--corpus",
                str(corpus),
                "--vocab-size",
                "200",
                "--min-frequency",
                "1",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    return out


@pytest.fixture(autouse=True)
def _restore_threads():
    """--threads 1 (below) sets a process-wide torch setting; give other tests theirs back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def pretrain_args(corpus: Path, tok: Path, out: Path, *extra: str) -> list[str]:
    # One thread: a hidden-32 model gains nothing from more, and on a busy machine extra threads spin-wait.
    return [
        "pretrain",
        "--corpus",
        str(corpus),
        "--tokenizer",
        str(tok),
        "--output-dir",
        str(out),
        "--layers",
        "1",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--intermediate",
        "64",
        "--max-seq-length",
        "32",
        "--batch-size",
        "8",
        "--learning-rate",
        "3e-3",
        "--warmup-ratio",
        "0.1",
        "--eval-instances",
        "16",
        "--logging-steps",
        "2",
        "--eval-steps",
        "10",
        "--threads",
        "1",
        *extra,
    ]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, corpus, tokenizer_dir) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(pretrain_args(corpus, tokenizer_dir, out, "--max-steps", "40", "--whole-word-masking")) == 0
    return out


def records(out: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]


def test_run_dir_has_the_promised_files(pretrained):
    names = {p.name for p in pretrained.iterdir()}
    assert set(RUN_FILES) <= names, set(RUN_FILES) - names
    assert not (pretrained / "checkpoints").exists()
    assert (pretrained / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    cfg = json.loads((pretrained / "config.json").read_text())
    assert cfg["architectures"] == ["BertForPreTraining"] and cfg["num_hidden_layers"] == 1


def test_losses_decrease_and_everything_is_logged(pretrained):
    train, evals = records(pretrained, "train"), records(pretrained, "eval")
    assert [e["step"] for e in evals] == [0, 10, 20, 30, 40]
    assert [t["step"] for t in train] == list(range(2, 41, 2))
    for key in ("mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy", "tokens_per_s", "lr"):
        assert all(key in t for t in train), key
    assert evals[-1]["mlm_loss"] < evals[0]["mlm_loss"] - 1.0  # from ~ln(vocab) towards the word statistics
    assert evals[-1]["mlm_accuracy"] > evals[0]["mlm_accuracy"]
    assert sum(t["mlm_loss"] for t in train[-3:]) < sum(t["mlm_loss"] for t in train[:3])
    m = json.loads((pretrained / "metrics.json").read_text())
    assert (
        m["train"]["steps"] == 40 and m["train"]["tokens_per_s"] > 0 and m["train"]["stopped_by"] == "steps"
    )
    assert "held-out MLM accuracy" in (pretrained / "README.md").read_text()


def test_output_is_a_standard_hf_bert_that_bertcls_train_fine_tunes(pretrained, sentiment_files, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(pretrained)
    assert "token_type_ids" in tok("a", "b")
    mlm = AutoModelForMaskedLM.from_pretrained(pretrained)
    ours = load_file(str(pretrained / "model.safetensors"))
    torch.testing.assert_close(
        mlm.cls.predictions.transform.dense.weight, ours["cls.predictions.transform.dense.weight"]
    )
    AutoModelForSequenceClassification.from_pretrained(pretrained, num_labels=2)
    out = tmp_path / "ft"
    assert (
        main(
            [
                "train",
                "--model",
                str(pretrained),
                "--train-file",
                str(sentiment_files["train"]),
                "--validation-file",
                str(sentiment_files["dev"]),
                "--output-dir",
                str(out),
                "--epochs",
                "1",
                "--max-length",
                "32",
                "--batch-size",
                "16",
            ]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["validation"]["n"] == 40


def test_max_steps_zero_saves_the_random_init(corpus, tokenizer_dir, tmp_path):
    out = tmp_path / "init"
    assert main(pretrain_args(corpus, tokenizer_dir, out, "--max-steps", "0", "--seed", "7")) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["train"]["steps"] == 0 and m["model"]["init"] == "random"
    assert [e["step"] for e in records(out, "eval")] == [0]
    again = tmp_path / "init2"
    assert main(pretrain_args(corpus, tokenizer_dir, again, "--max-steps", "0", "--seed", "7")) == 0
    a, b = load_file(str(out / "model.safetensors")), load_file(str(again / "model.safetensors"))
    for k in a:  # seeded: the same architecture + seed gives the same initial weights
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_time_budget_stops_and_saves(corpus, tokenizer_dir, tmp_path):
    out = tmp_path / "timed"
    assert main(pretrain_args(corpus, tokenizer_dir, out, "--max-minutes", "0.002")) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["train"]["stopped_by"] == "time"
    assert (out / "model.safetensors").is_file()


def test_resume_after_interrupt_is_exact(corpus, tokenizer_dir, tmp_path, monkeypatch, capsys):
    """Ctrl-C mid-epoch (of an --overwrite run), then the printed --resume command, gives the same weights
    and the same history as an uninterrupted run (across epochs)."""
    import shlex

    extra = (
        "--max-steps",
        "14",
        "--keep-checkpoints",
        "--eval-steps",
        "4",
        "--whole-word-masking",
        "--batch-size",
        "16",
    )
    assert main(pretrain_args(corpus, tokenizer_dir, tmp_path / "full", *extra)) == 0
    steps_per_epoch = (
        json.loads((tmp_path / "full" / "metrics.json").read_text())["train"]["n_train_instances"] // 16
    )
    assert steps_per_epoch < 14  # the run crosses an epoch boundary: new masks, new order

    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def flaky_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", flaky_step)
    capsys.readouterr()
    assert main(pretrain_args(corpus, tokenizer_dir, tmp_path / "cut", *extra, "--overwrite")) == 130
    partial = tmp_path / "cut.partial"
    state = json.loads((partial / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    # a kill after the checkpoint but before metrics.jsonl was rewritten: the checkpoint carries the records
    (partial / "metrics.jsonl").unlink()
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    command = capsys.readouterr().err.split("Continue with: ")[1].strip()
    assert main(shlex.split(command)[1:]) == 0  # exactly what the user is told to type
    assert not partial.exists()
    a, b = (
        load_file(str(tmp_path / "full" / "model.safetensors")),
        load_file(str(tmp_path / "cut" / "model.safetensors")),
    )
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    full_eval, cut_eval = records(tmp_path / "full", "eval")[-1], records(tmp_path / "cut", "eval")[-1]
    assert full_eval["mlm_loss"] == pytest.approx(cut_eval["mlm_loss"], abs=1e-6)
    for kind in ("train", "eval"):
        assert [r["step"] for r in records(tmp_path / "full", kind)] == [
            r["step"] for r in records(tmp_path / "cut", kind)
        ]


def test_continue_pretraining_a_bert_without_heads(tiny_bert, corpus, tmp_path):
    from transformers import BertForPreTraining

    assert not any(k.startswith("cls.") for k in load_file(str(tiny_bert / "model.safetensors")))
    out = tmp_path / "continued"
    assert (
        main(
            [
                "pretrain",
                "--corpus",
                str(corpus),
                "--model",
                str(tiny_bert),
                "--output-dir",
                str(out),
                "--max-steps",
                "3",
                "--batch-size",
                "4",
                "--max-seq-length",
                "32",
                "--eval-instances",
                "4",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    saved = load_file(str(out / "model.safetensors"))
    assert any(k.startswith("cls.seq_relationship") for k in saved)
    model = BertForPreTraining.from_pretrained(out)
    before = load_file(str(tiny_bert / "model.safetensors"))
    key = next(k for k in before if "encoder.layer.0.attention" in k and k.endswith("weight"))
    changed = model.state_dict()["bert." + key] if not key.startswith("bert.") else model.state_dict()[key]
    assert not torch.equal(changed, before[key])  # the encoder itself was trained
    assert json.loads((out / "metrics.json").read_text())["model"]["init"] == str(tiny_bert)


@pytest.mark.parametrize(
    "case",
    [
        "missing_corpus",
        "empty_corpus",
        "missing_tokenizer",
        "not_a_tokenizer",
        "both_sources",
        "size_with_model",
        "dupe_factor_0",
        "missing_exclude_file",
        "seq_longer_than_model",
        "unwritable",
    ],
)
def test_bad_input_exit_2_one_line_no_run_dir(case, corpus, tokenizer_dir, tiny_bert, tmp_path, capsys):
    out = tmp_path / "run"
    args = pretrain_args(corpus, tokenizer_dir, out, "--max-steps", "2")
    if case == "missing_corpus":
        args[2] = str(tmp_path / "nope.txt")
        expect = "nope.txt: corpus file not found"
    elif case == "empty_corpus":
        (tmp_path / "empty.txt").write_text("\n\n  \n")
        args[2] = str(tmp_path / "empty.txt")
        expect = "corpus is empty"
    elif case == "missing_tokenizer":
        args[4] = str(tmp_path / "no-tok")
        expect = "no-tok: directory not found; train one first with: bertcls tokenizer train"
    elif case == "not_a_tokenizer":
        (tmp_path / "junk").mkdir()
        args[4] = str(tmp_path / "junk")
        expect = "no tokenizer.json or vocab.txt"
    elif case == "both_sources":
        args += ["--model", str(tiny_bert)]
        expect = "not both"
    elif case == "missing_exclude_file":
        args += ["--exclude-file", str(tmp_path / "dev.csv")]
        expect = "dev.csv: --exclude-file not found; give the evaluation file whose texts to keep out"
    elif case == "seq_longer_than_model":
        args = ["pretrain", "--corpus", str(corpus), "--model", str(tiny_bert), "--output-dir", str(out)]
        args += ["--max-seq-length", "256"]
        expect = "--max-seq-length=256 exceeds the model's 128 positions"
    elif case == "unwritable":
        (tmp_path / "file.txt").write_text("x")
        out = tmp_path / "file.txt" / "run"
        args[args.index("--output-dir") + 1] = str(out)
        expect = "cannot write there ("
    elif case == "dupe_factor_0":
        args += ["--dupe-factor", "0"]
        expect = "--dupe-factor=0 is invalid: must be >= 1"
    else:
        args = [
            "pretrain",
            "--corpus",
            str(corpus),
            "--model",
            str(tiny_bert),
            "--preset",
            "mini",
            "--output-dir",
            str(out),
        ]
        expect = "drop the size options"
    code = main(args)
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("bertcls: error:")]
    assert code == 2 and len(lines) == 1 and expect in lines[0], err
    assert "Traceback" not in err
    assert not out.exists()


def test_dropout_option_applies_to_the_run_but_not_the_saved_config(corpus, tokenizer_dir, tmp_path):
    from transformers import BertConfig, BertForPreTraining

    from bertcls.pretrain.pretrain import set_dropout

    model = BertForPreTraining(
        BertConfig(
            vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
    ).train()
    ids = torch.randint(5, 50, (2, 8))
    assert not torch.equal(model(input_ids=ids).prediction_logits, model(input_ids=ids).prediction_logits)
    set_dropout(model, 0.0)
    torch.testing.assert_close(model(input_ids=ids).prediction_logits, model(input_ids=ids).prediction_logits)
    out = tmp_path / "d0"
    assert main(pretrain_args(corpus, tokenizer_dir, out, "--max-steps", "2", "--dropout", "0")) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["hidden_dropout_prob"] == 0.1 and saved["attention_probs_dropout_prob"] == 0.1
    assert "dropout: 0.0" in (out / "run_config.yaml").read_text()


def test_summary_is_a_short_table(pretrained):
    from bertcls.pretrain.pretrain import summarize

    result = json.loads((pretrained / "metrics.json").read_text())
    text = summarize(result)
    lines = text.splitlines()
    assert len(lines) <= 5 and "{" not in text
    assert lines[1].split()[:3] == ["eval", str(result["eval"]["n"]), f"{result['eval']['mlm_accuracy']:.4f}"]
    assert f"model saved to {result['output_dir']}" in text


def test_a_nan_loss_stops_the_run_and_publishes_nothing(corpus, tokenizer_dir, tmp_path, monkeypatch, capsys):
    """Regression: a diverged pretraining run trained on NaN weights to its step limit and saved them."""
    out = tmp_path / "diverged"
    poison_after(monkeypatch, 3)
    capsys.readouterr()
    assert main(pretrain_args(corpus, tokenizer_dir, out, "--max-steps", "30")) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith(
        "bertcls: error: pretrain: the training loss became nan at step 4"
    )
    assert "--learning-rate" in last, last
    assert not out.exists() and not (tmp_path / "diverged.partial").exists()


def test_a_batch_without_masked_tokens_has_a_finite_zero_mlm_loss(tiny_bert):
    from transformers import BertForPreTraining

    from bertcls.pretrain.objective import PretrainingObjective

    model = BertForPreTraining.from_pretrained(tiny_bert)
    ids = torch.tensor([[2, 5, 6, 3]])
    r = PretrainingObjective(model)(
        input_ids=ids,
        token_type_ids=torch.zeros_like(ids),
        attention_mask=torch.ones_like(ids),
        labels=torch.full_like(ids, -100),
        next_sentence_label=torch.tensor([0]),
    )
    assert r["mlm_loss"].item() == 0.0 and int(r["mlm_n"]) == 0
    assert torch.isfinite(r["mlm_loss"] + r["nsp_loss"])
