"""Output and run directories: nothing the command did not create is deleted, an old result survives until
the new one is complete, failed runs leave nothing half-written, killed checkpoints recover."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import sentiment_rows, train_args, write_csv

from bertcls.cli import main
from bertcls.core import checkpoint, io, rundir


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _one_error(capsys, expect: str) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("bertcls: error:")]
    assert len(lines) == 1 and expect in lines[0], err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def model(trained_tiny, tmp_path) -> Path:
    """A private copy of the trained model: these tests try to make commands destroy it."""
    return Path(shutil.copytree(trained_tiny, tmp_path / "m"))


# ---------------------------------------------------------------------------------------------------- evaluate, export
@pytest.mark.parametrize("target", ["model_dir", "model_parent", "cwd", "foreign"])
def test_evaluate_never_deletes_what_it_did_not_create(
    target, model, sentiment_files, tmp_path, monkeypatch, capsys
):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(work)
    out, expect = {
        "model_dir": (model, "an input of this command"),
        "model_parent": (tmp_path, "an input of this command"),
        "cwd": (Path("."), "is the current directory"),
        "foreign": (foreign, "is not the output of an earlier 'bertcls evaluate'"),
    }[target]
    before = {d: _snapshot(d) for d in (model, work, foreign)}
    code = main(["evaluate", str(model), "--file", str(sentiment_files["test"]), "--output-dir", str(out)])
    assert code == 2
    _one_error(capsys, expect)
    assert {d: _snapshot(d) for d in (model, work, foreign)} == before


def test_evaluate_replaces_its_own_earlier_report(model, sentiment_files, tmp_path):
    out = tmp_path / "report"
    args = ["evaluate", str(model), "--file", str(sentiment_files["test"]), "--output-dir", str(out)]
    assert main(args) == 0
    (out / "metrics.json").write_text("{}")  # marks the old report
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["accuracy"] >= 0.9
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # nothing left aside


def test_export_refuses_the_model_dir(model, capsys):
    before = _snapshot(model)
    assert main(["export", str(model), "--output-dir", str(model)]) == 2
    _one_error(capsys, "an input of this command")
    assert _snapshot(model) == before


def test_evaluate_into_an_unwritable_place_is_one_line(model, sentiment_files, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    out = blocker / "report"  # cannot be created: its parent is a file
    assert (
        main(["evaluate", str(model), "--file", str(sentiment_files["test"]), "--output-dir", str(out)]) == 2
    )
    _one_error(capsys, "cannot write there (")


def test_export_into_an_unwritable_place_fails_before_the_work(model, tmp_path, monkeypatch, capsys):
    from bertcls.deploy import export

    def no_work(*a, **k):
        raise AssertionError("the export started before the output was checked")

    monkeypatch.setattr(export, "_require_deps", no_work)
    (tmp_path / "file.txt").write_text("x")
    assert main(["export", str(model), "--output-dir", str(tmp_path / "file.txt" / "onnx")]) == 2
    _one_error(capsys, "cannot write there (")


# ---------------------------------------------------------------------------------------------------- io, checkpoint
def test_replace_dir_keeps_the_old_result_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    target, new = tmp_path / "out", tmp_path / "new"
    target.mkdir()
    (target / "f").write_text("old")
    new.mkdir()
    (new / "f").write_text("new")
    real = os.replace
    calls = {"n": 0}

    def failing_second_rename(a, b):
        calls["n"] += 1
        if calls["n"] == 2:  # old moved aside, the new one not yet in
            raise OSError("disk full")
        return real(a, b)

    monkeypatch.setattr(io.os, "replace", failing_second_rename)
    with pytest.raises(OSError):
        io.replace_dir(new, target)
    assert (target / "f").read_text() == "old"
    monkeypatch.setattr(io.os, "replace", real)
    io.replace_dir(new, target)
    assert (target / "f").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _tiny_checkpoint(directory: Path, step: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    history = [{"type": "eval", "step": s} for s in range(1, step + 1)]
    checkpoint.save(directory, model.state_dict(), opt, sched, {"global_step": step}, history=history)
    return model, opt, sched


@pytest.mark.parametrize("left", ["tmp_and_old", "old_only"])
def test_checkpoint_killed_between_renames_recovers(left, tmp_path):
    last = tmp_path / "checkpoints" / "last"
    _tiny_checkpoint(last, 1)
    _tiny_checkpoint(last, 2)
    # what a SIGKILL between `last -> last.old` and `last.tmp -> last` leaves behind
    os.replace(last, last.with_name("last.old"))
    if left == "tmp_and_old":
        _tiny_checkpoint(tmp_path / "newer", 3)
        os.replace(tmp_path / "newer", last.with_name("last.tmp"))
    assert checkpoint.exists(last)
    model, opt, sched = _tiny_checkpoint(tmp_path / "scratch", 0)
    state = checkpoint.load(last, model, opt, sched)
    want = 3 if left == "tmp_and_old" else 2
    assert state["global_step"] == want
    assert [h["step"] for h in checkpoint.load_history(last)] == list(range(1, want + 1))


# ---------------------------------------------------------------------------------------------------- train
def test_failed_overwrite_keeps_the_old_model_and_leaves_nothing(
    tiny_bert, sentiment_files, trained_tiny, tmp_path, monkeypatch
):
    out = Path(shutil.copytree(trained_tiny, tmp_path / "m"))
    before = _snapshot(out)

    def broken_step(self, *a, **k):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(torch.optim.AdamW, "step", broken_step)
    with pytest.raises(RuntimeError, match="simulated"):
        main(train_args(tiny_bert, sentiment_files, out, "--overwrite"))
    assert _snapshot(out) == before  # the previous model is untouched
    with pytest.raises(RuntimeError, match="simulated"):
        main(train_args(tiny_bert, sentiment_files, tmp_path / "fresh"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no partial run dir of either run


@pytest.mark.parametrize(
    "case", ["max_length", "few_samples", "unwritable", "foreign", "model_dir", "exists", "interrupted"]
)
def test_train_refusals_are_one_line_and_touch_nothing(case, tiny_bert, sentiment_files, tmp_path, capsys):
    files, extra = dict(sentiment_files), []
    out = tmp_path / "run"
    model = Path(shutil.copytree(tiny_bert, tmp_path / "base"))
    if case == "max_length":
        extra, expect = ["--max-length", "256"], "--max-length=256 exceeds the 128 positions"
    elif case == "few_samples":
        rows = [
            {"text": f"{w} film", "label": w} for w in ["good", "bad", "fine", "poor", "nice", "dull"] * 4
        ]
        files["train"] = write_csv(tmp_path / "six.csv", rows)
        files["dev"] = files["train"]
        extra, expect = ["--max-train-samples", "4"], "--max-train-samples=4 is fewer than the 6 labels"
    elif case == "unwritable":
        (tmp_path / "file.txt").write_text("x")
        out, expect = tmp_path / "file.txt" / "run", "cannot write there ("
    elif case == "foreign":
        out.mkdir()
        (out / "keep.txt").write_text("x")
        extra, expect = ["--overwrite"], "not the output of an earlier 'bertcls train'"
    elif case == "model_dir":
        out, extra, expect = model, ["--overwrite"], "an input of this command"
    elif case == "exists":
        out.mkdir()
        (out / "run_config.yaml").write_text("label_column: label\n")
        expect = "pass --overwrite to replace it"
    else:  # an interrupted run waits in run.partial: a new run must not silently discard it
        last = rundir.partial_dir(out) / "checkpoints" / "last"
        last.mkdir(parents=True)
        (last.parent.parent / "run_config.yaml").write_text("label_column: label\n")
        (last / checkpoint.STATE_FILE).write_text("{}")
        expect = "holds an interrupted 'bertcls train' run; continue it with --resume"
    before = _snapshot(tmp_path)
    assert main(train_args(model, files, out, *extra)) == 2
    _one_error(capsys, expect)
    assert _snapshot(tmp_path) == before
    assert case == "interrupted" or not rundir.partial_dir(out).exists()


def test_resume_without_an_interrupted_run_says_so(tiny_bert, sentiment_files, tmp_path, capsys):
    assert main(train_args(tiny_bert, sentiment_files, tmp_path / "run", "--resume")) == 2
    _one_error(capsys, "no interrupted run to resume")


# ---------------------------------------------------------------------------------------------------- shared
def test_param_groups_list_tied_weights_once():
    from transformers import BertConfig, BertForPreTraining

    model = BertForPreTraining(
        BertConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    groups = rundir.param_groups(model, 0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    torch.optim.AdamW(groups)  # torch refuses a parameter listed twice


def test_train_summary_is_a_short_table(trained_tiny):
    from bertcls.train.train import summarize

    result = json.loads((trained_tiny / "metrics.json").read_text()) | {"output_dir": str(trained_tiny)}
    text = summarize(result)
    lines = text.splitlines()
    assert len(lines) <= 6 and "{" not in text  # header, model, TF-IDF, verdict, time, where
    assert lines[0].split() == ["split", "rows", "accuracy", "macro-F1", "loss", "PR-AUC", "ECE"]
    assert lines[1].split()[:3] == ["test", "40", f"{result['test']['accuracy']:.4f}"]
    assert lines[2].split()[:2] == ["test", "TF-IDF"] and lines[3].startswith("BERT ")
    assert f"model saved to {trained_tiny}" in text


def test_expected_new_head_is_one_line_surprises_stay_visible(caplog):
    import logging

    from bertcls.core.load_report import load_classifier

    def fake_load(info):
        def load(output_loading_info):
            logging.getLogger("transformers.modeling_utils").warning("Bert LOAD REPORT from: x\n<table>")
            return "model", info

        return load

    new_head = {
        "missing_keys": {"classifier.weight", "classifier.bias"},
        "unexpected_keys": {"cls.predictions.bias"},
    }
    with caplog.at_level(logging.INFO):
        assert load_classifier(fake_load(new_head), 3) == "model"
    assert "new classification head initialised for 3 labels" in caplog.text
    assert "LOAD REPORT" not in caplog.text
    caplog.clear()
    surprise = {
        "missing_keys": {"bert.encoder.layer.0.attention.self.query.weight"},
        "unexpected_keys": set(),
    }
    with caplog.at_level(logging.INFO):
        load_classifier(fake_load(surprise), 3)
    assert "LOAD REPORT" in caplog.text and "new classification head" not in caplog.text


def test_first_train_run_says_new_head_in_one_line(tiny_bert, sentiment_files, tmp_path, capfd):
    rows = sentiment_rows(20, seed=4)
    f = write_csv(tmp_path / "small.csv", rows)
    args = ["train", "--model", str(tiny_bert), "--train-file", str(f), "--output-dir", str(tmp_path / "r")]
    assert main([*args, "--epochs", "1", "--max-length", "16"]) == 0
    out, err = capfd.readouterr()
    assert "new classification head initialised for 2 labels" in err
    assert "LOAD REPORT" not in err and "MISSING" not in err
    assert "Loading weights" not in err  # transformers' per-load progress bar is off
    assert "model saved to" in out and not out.lstrip().startswith("{")


def test_crash_after_a_checkpoint_keeps_the_old_model_and_resumes(
    tiny_bert, sentiment_files, trained_tiny, tmp_path, monkeypatch
):
    out = Path(shutil.copytree(trained_tiny, tmp_path / "m"))
    before = _snapshot(out)
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def crash_in_epoch_2(self, *a, **k):  # 10 steps per epoch: the epoch-1 checkpoint exists
        calls["n"] += 1
        if calls["n"] == 12:
            raise RuntimeError("killed (simulated)")
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", crash_in_epoch_2)
    with pytest.raises(RuntimeError, match="simulated"):
        main(train_args(tiny_bert, sentiment_files, out, "--overwrite"))
    assert _snapshot(out) == before
    assert checkpoint.exists(rundir.partial_dir(out) / "checkpoints" / "last")
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    assert main(train_args(tiny_bert, sentiment_files, out, "--resume")) == 0
    assert not rundir.partial_dir(out).exists()
    assert _snapshot(out) != before
    assert json.loads((out / "metrics.json").read_text())["train"]["steps"] == 40


def test_read_only_parent_is_refused_up_front(tmp_path, monkeypatch):
    """Root ignores permission bits, so the read-only place is simulated where bertcls asks about it."""
    from bertcls.core.errors import UserError

    monkeypatch.setattr(rundir.os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(UserError, match=r"out: cannot write there \(.* is not writable\)"):
        rundir.check_output_dir(tmp_path / "out", "evaluate", overwrite=None)
    with pytest.raises(UserError, match="is not writable"):  # the nearest existing ancestor decides
        rundir.check_output_dir(tmp_path / "new" / "out", "evaluate", overwrite=None)
    (tmp_path / "ok").mkdir()
    rundir.check_output_dir(tmp_path / "ok" / "out", "evaluate", overwrite=None)
