"""`bertcls distill`: students from teacher layers, a miniature preset or a same-vocabulary model; the
distilled student tracks the teacher better than it started; one-line errors leave nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_tiny_bert, sentiment_rows

from bertcls.cli import main


def distill_args(teacher, files, out, *extra):
    return [
        "distill", "--teacher", str(teacher), "--train-file", str(files["train"]),
        "--validation-file", str(files["dev"]), "--test-file", str(files["test"]), "--output-dir", str(out),
        "--epochs", "3", "--batch-size", "16", "--learning-rate", "3e-3", "--max-length", "32", *extra,
    ]  # fmt: skip


def test_layers_taken_from_the_teacher_are_copied(trained_tiny, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from bertcls.compress.student import from_teacher_layers

    teacher = AutoModelForSequenceClassification.from_pretrained(trained_tiny)
    from_teacher_layers(teacher, [1], tmp_path / "s")
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "s")
    assert student.config.num_hidden_layers == 1 and student.config.id2label == teacher.config.id2label
    t, s = teacher.state_dict(), student.state_dict()
    for name, w in s.items():
        src = name.replace(".layer.0.", ".layer.1.")
        assert torch.equal(w, t[src]), name


def test_distilled_student_tracks_the_teacher(trained_tiny, sentiment_files, tmp_path):
    """A randomly initialised miniature, taught by soft targets alone (alpha 1), ends far closer to the
    teacher's logits on the training texts than it starts."""
    from transformers import AutoModelForSequenceClassification

    from bertcls import TextClassifier
    from bertcls.compress.student import from_preset

    out = tmp_path / "student"
    args = distill_args(trained_tiny, sentiment_files, out, "--student-preset", "tiny", "--alpha", "1")
    assert main([*args, "--epochs", "6"]) == 0
    texts = [r["text"] for r in sentiment_rows(160, seed=1)]
    teacher = TextClassifier.from_pretrained(trained_tiny, ensemble=False).logits(texts)
    student = TextClassifier.from_pretrained(out, ensemble=False)
    torch.manual_seed(0)
    from_preset(AutoModelForSequenceClassification.from_pretrained(trained_tiny), "tiny", tmp_path / "init")
    init = AutoModelForSequenceClassification.from_pretrained(tmp_path / "init").eval()
    before = np.mean((TextClassifier(init, student.tokenizer, student.meta).logits(texts) - teacher) ** 2)
    after = np.mean((student.logits(texts) - teacher) ** 2)
    assert after < 0.25 * before, (before, after)
    assert (
        student.predict(texts) == np.array(TextClassifier.from_pretrained(trained_tiny).predict(texts))
    ).mean() > 0.9
    meta = json.loads((out / "bertcls.json").read_text())
    assert (
        meta["distillation"]["teacher"] == str(trained_tiny)
        and "BERT-tiny" in meta["distillation"]["student"]
    )
    assert "## Distillation" in (out / "README.md").read_text()
    # the command's resolved options are saved and load back as a valid distill config
    import yaml

    from bertcls.compress.distill import DistillConfig
    from bertcls.core.config import from_dict

    saved = yaml.safe_load((out / "distill_config.yaml").read_text())
    again = from_dict(DistillConfig, saved, source="distill_config.yaml")
    assert again.teacher == str(trained_tiny) and again.student_preset == "tiny" and again.alpha == 1.0


def test_layer_student_and_unlabelled_texts(trained_tiny, sentiment_files, tmp_path):
    extra = tmp_path / "more.txt"
    extra.write_text("\n".join(r["text"] for r in sentiment_rows(50, seed=7)) + "\n")
    out = tmp_path / "mini"
    args = distill_args(
        trained_tiny, sentiment_files, out, "--student-preset", "tiny", "--unlabeled-file", str(extra)
    )
    assert main([*args, "--epochs", "1"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"]) == (2, 128)
    assert "teacher logits for 210 transfer rows (50 unlabelled)" in (out / "train.log").read_text()


def test_distillation_loss_limits():
    from bertcls.compress.distill import DistillLoss

    g = torch.Generator().manual_seed(0)
    z, t = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    y, every = torch.randint(0, 3, (8,), generator=g), torch.ones(8, dtype=torch.bool)
    ce = torch.nn.CrossEntropyLoss()
    assert torch.allclose(DistillLoss(ce, 2.0, 0.0, False)(z, y, t, every), ce(z, y))
    assert DistillLoss(ce, 2.0, 1.0, False)(t, y, t, every).abs() < 1e-6  # student = teacher: no soft loss
    none = torch.zeros(8, dtype=torch.bool)  # unlabelled rows: soft targets only
    assert torch.allclose(
        DistillLoss(ce, 2.0, 0.5, False)(z, y, t, none), DistillLoss(ce, 2.0, 1.0, False)(z, y, t, none) * 0.5
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--student-layers", "0,5"],
            "--student-layers='0,5' is invalid: give increasing layer indices in 0..1",
        ),
        (
            ["--student-layers", "1", "--student-preset", "mini"],
            "give one of --student-layers, --student-preset",
        ),
        (["--temperature", "0"], "--temperature=0.0 is invalid"),
        (["--multi-label"], "is a single-label model: drop --multi-label"),
        # regression: distill accepted --method setfit and trained a setfit model, dropping the teacher
        (["--method", "setfit"], "--method='setfit' is invalid: distill fine-tunes the student"),
    ],
)
def test_bad_distill_options(trained_tiny, sentiment_files, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(distill_args(trained_tiny, sentiment_files, out, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_refuses_a_base_model_teacher_and_a_foreign_vocabulary(
    tiny_bert, trained_tiny, sentiment_files, tmp_path, capsys
):
    out = tmp_path / "bad"
    assert main(distill_args(tiny_bert, sentiment_files, out)) == 2
    assert "classifier" in capsys.readouterr().err
    other = make_tiny_bert(tmp_path / "other", words=["alpha", "beta", "gamma"])
    assert main(distill_args(trained_tiny, sentiment_files, out, "--student", str(other))) == 2
    assert "its vocabulary differs from the teacher's" in capsys.readouterr().err
    assert not out.exists()


def test_interrupted_distill_says_how_to_start_again(
    trained_tiny, sentiment_files, tmp_path, capsys, monkeypatch
):
    """train's "--resume" advice would drop the teacher: distill and prune say to start again instead."""
    import bertcls.train.train as train_mod
    from bertcls.core.runtime import Interrupted

    def interrupted(cfg, on_eval=None, distill=None):
        raise Interrupted("interrupted at step 3; Continue with: bertcls train --config x --resume")

    monkeypatch.setattr(train_mod, "run", interrupted)
    out = tmp_path / "student"
    assert main(distill_args(trained_tiny, sentiment_files, out, "--student-layers", "1")) == 130
    err = capsys.readouterr().err
    assert (
        "distill interrupted; an interrupted distill or prune starts again" in err and "--resume" not in err
    )
    assert main(distill_args(trained_tiny, sentiment_files, out, "--resume")) == 2
    assert "starts again: run the same command with --overwrite" in capsys.readouterr().err


def test_preset_student_follows_the_seed(trained_tiny, sentiment_files, tmp_path):
    """Regression: a preset student's random initialisation came from whatever had used torch's global RNG
    before, so the same command gave different students (and a test passed or failed by test order)."""
    weights = []
    for i, noise in enumerate((1, 2)):
        torch.manual_seed(noise)  # what ran before in the process
        torch.rand(noise * 10)
        out = tmp_path / f"s{i}"
        args = distill_args(trained_tiny, sentiment_files, out, "--student-preset", "tiny", "--seed", "3")
        assert main([*args, "--epochs", "1"]) == 0
        weights.append((out / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_augmented_transfer_set_and_labels_alone(trained_tiny, sentiment_files, tmp_path):
    """--augment while distilling: the new texts join the transfer set (the teacher scores them too); with
    --alpha 0 (the labels alone, distillation's baseline) the teacher's pass is skipped."""
    n_train = sum(1 for _ in open(sentiment_files["train"], encoding="utf-8")) - 1
    for alpha in ("0.5", "0"):
        out = tmp_path / f"alpha{alpha}"
        args = distill_args(trained_tiny, sentiment_files, out, "--student-layers", "1", "--alpha", alpha)
        assert main([*args, "--epochs", "1", "--augment", "eda:1", "--no-baseline"]) == 0
        log = (out / "train.log").read_text()
        if alpha == "0":
            assert "the teacher is not run" in log and "teacher logits for" not in log, log
        else:
            rows = int(log.split("teacher logits for ")[1].split()[0])
            assert n_train < rows <= 2 * n_train, log


# ------------------------------------------------------------------- intermediate layers (TinyBERT)
def test_uniform_layer_map():
    from bertcls.compress.layer_match import uniform_map

    assert (
        uniform_map(3, 6) == [1, 3, 5] and uniform_map(4, 12) == [2, 5, 8, 11] and uniform_map(2, 2) == [0, 1]
    )


def test_layer_loss_is_zero_for_the_teacher_itself_and_grows_with_change():
    """The loss compares the right tensors: a student identical to the teacher scores exactly 0 on
    hidden states and attention scores; perturbing one query projection makes only attention non-zero."""
    from transformers import BertConfig, BertForSequenceClassification

    from bertcls.compress.layer_match import LayerMatch

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    teacher = BertForSequenceClassification(cfg).eval()
    student = BertForSequenceClassification(cfg).train()
    student.load_state_dict(teacher.state_dict())
    match = LayerMatch(teacher, student, [0, 1], hidden_weight=1.0, attention_weight=1.0)
    batch = {"input_ids": torch.randint(1, 50, (3, 7)), "attention_mask": torch.ones(3, 7, dtype=torch.long)}
    batch["attention_mask"][0, 4:] = 0  # padding must not count
    assert match.loss(student(**batch, **match.forward_kwargs), batch).item() == 0.0
    with torch.no_grad():
        student.bert.encoder.layer[1].attention.self.query.weight.mul_(3.0)
    only_attention = LayerMatch(teacher, student, [0, 1], hidden_weight=0.0, attention_weight=1.0)
    assert only_attention.loss(student(**batch), batch).item() > 0


def layer_distances(teacher_dir, student_dir, texts, layer_map):
    """(hidden-state MSE, attention-score MSE) of a student against its teacher over its mapped layers."""
    from transformers import AutoModelForSequenceClassification

    from bertcls.compress.layer_match import LayerMatch
    from bertcls.core.models import load_tokenizer

    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    student = AutoModelForSequenceClassification.from_pretrained(student_dir)
    student.config.hidden_dropout_prob = 0.0
    for m in student.modules():  # training mode (the recorder's cue) without dropout
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    batch = dict(load_tokenizer(teacher_dir)(texts, padding=True, return_tensors="pt"))
    out = []
    for hw, aw in ((1.0, 0.0), (0.0, 1.0)):
        match = LayerMatch(teacher, student.train(), layer_map, hw, aw)
        with torch.no_grad():
            out.append(match.loss(student(**batch, **match.forward_kwargs), batch).item())
    return out


def test_hidden_and_attention_matching_pull_the_student_towards_its_teacher_layers(
    trained_tiny, sentiment_files, tmp_path
):
    """distill --hidden-weight / --attention-weight: the student copied from teacher layer 1 ends closer to
    that layer's hidden states and attention scores than the same run without them, and saves as a
    plain classifier."""
    from transformers import AutoModelForSequenceClassification

    texts = [r["text"] for r in sentiment_rows(40, seed=1)]
    dist = {}
    for name, extra in (("plain", []), ("matched", ["--hidden-weight", "5", "--attention-weight", "5"])):
        out = tmp_path / name
        args = distill_args(trained_tiny, sentiment_files, out, "--student-layers", "1", "--seed", "0")
        assert main([*args, "--epochs", "2", "--no-baseline", *extra]) == 0
        dist[name] = layer_distances(trained_tiny, out, texts, [1])
    assert dist["matched"][0] < 0.5 * dist["plain"][0], dist
    assert dist["matched"][1] < 0.5 * dist["plain"][1], dist
    log = (tmp_path / "matched" / "train.log").read_text()
    assert "student layer j <- teacher layer [1] (hidden 5.0, attention 5.0)" in log
    meta = json.loads((tmp_path / "matched" / "bertcls.json").read_text())["distillation"]
    assert (meta["hidden_weight"], meta["attention_weight"]) == (5.0, 5.0)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "matched")
    assert (
        model.config.num_hidden_layers == 1
        and not model.bert.encoder.layer[0].attention.self.query._forward_hooks
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--student-preset", "tiny", "--hidden-weight", "1"],
         "--hidden-weight=1.0: the student's hidden size (128) differs from the teacher's (32)"),
        (["--student-preset", "mini", "--attention-weight", "1"],
         "--attention-weight=1.0: the student has 4 attention heads, the teacher 2"),
        (["--hidden-weight", "-1"], "--hidden-weight=-1.0 is invalid: must be >= 0"),
    ],
)  # fmt: skip
def test_layer_matching_refuses_shapes_that_do_not_allow_it(
    trained_tiny, sentiment_files, tmp_path, capsys, extra, message
):
    out = tmp_path / "bad"
    code = main(distill_args(trained_tiny, sentiment_files, out, *extra))
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not out.exists()


def test_attention_matching_needs_equal_heads_not_equal_width(trained_tiny, sentiment_files, tmp_path):
    # scores are (batch, heads, query, key): a wider student with the teacher's 2 heads can match them
    out = tmp_path / "wide"
    args = ["--student-preset", "tiny", "--attention-weight", "1"]
    assert main(distill_args(trained_tiny, sentiment_files, out, *args)) == 0
    assert json.loads((out / "bertcls.json").read_text())["distillation"]["attention_weight"] == 1.0


def test_student_may_be_a_built_in_alias(trained_tiny, sentiment_files, tmp_path, capsys):
    """Regression: --student minilm-l6 was taken as a hub id (a network error); it is the packaged model,
    whose vocabulary is then checked against the teacher's like any directory's."""
    out = tmp_path / "bad"
    assert main(distill_args(trained_tiny, sentiment_files, out, "--student", "minilm-l6")) == 2
    err = capsys.readouterr().err
    assert (
        "--student=minilm-l6: its vocabulary differs from the teacher's" in err and "huggingface" not in err
    )
    assert not out.exists()


def test_unlabelled_text_file_with_bad_bytes_is_a_one_line_error(
    trained_tiny, sentiment_files, tmp_path, capsys
):
    """Regression: a .txt --unlabeled-file was read outside the data readers, so a non-UTF-8 byte ended in a
    UnicodeDecodeError traceback; it is now the readers' one-line error naming the line."""
    bad = tmp_path / "more.txt"
    bad.write_bytes(b"good text\n" + "caf\xe9 latin-1\n".encode("latin-1"))
    out = tmp_path / "bad"
    args = distill_args(trained_tiny, sentiment_files, out, "--unlabeled-file", str(bad))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 2" in err and "Traceback" not in err
    assert not out.exists()
