"""`bertcls tune`: Optuna trials of `train` with a SQLite study that resumes, a pruner fed by each
validation, best_config.yaml that `bertcls train --config` takes, and one-line errors for bad spaces."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
import yaml
from helpers import train_args

from bertcls.cli import main

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("optuna") is None, reason="pip install 'bertcls[tune]'"
)


def tune_args(model, files, out, space_file, *extra):
    args = train_args(model, files, out, "--epochs", "1", *extra)
    return ["tune", *args[1:], "--search", str(space_file)]


@pytest.fixture
def space(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}\nbatch_size: [8, 16]\n")
    return f


def test_tune_writes_study_best_config_and_plots(tiny_bert, sentiment_files, tmp_path, space, capsys):
    out = tmp_path / "tune"
    assert main(tune_args(tiny_bert, sentiment_files, out, space, "--trials", "3", "--pruner", "none")) == 0
    printed = capsys.readouterr().out
    assert "3 trials finished, 0 pruned, 0 failed" in printed and "best_config.yaml" in printed
    for name in ("study.db", "trials.csv", "tune_summary.json", "optimization_history.png", "README.md"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert [r["state"] for r in rows] == ["complete"] * 3
    summary = json.loads((out / "tune_summary.json").read_text())
    best = summary["best"]
    assert float(max(r["value"] for r in rows)) == pytest.approx(best["value"])
    assert 1e-3 <= best["params"]["learning_rate"] <= 1e-2 and best["params"]["batch_size"] in (8, 16)
    # only the best trial keeps its weights; every trial keeps its metrics
    kept = sorted(p.parent.name for p in (out / "trials").glob("*/model.safetensors"))
    assert kept == [f"trial-{best['number']:03d}"]
    assert len(list((out / "trials").glob("*/metrics.json"))) == 3
    # trials never see the test file; the best config keeps it for the final training
    assert not any("test" in json.loads(m.read_text()) for m in (out / "trials").glob("*/metrics.json"))
    cfg = yaml.safe_load((out / "best_config.yaml").read_text())
    assert cfg["learning_rate"] == best["params"]["learning_rate"] and cfg["test_file"]
    final = tmp_path / "final"
    assert main(["train", "--config", str(out / "best_config.yaml"), "--output-dir", str(final)]) == 0
    assert json.loads((final / "metrics.json").read_text())["test"]["n"] == 40


def test_interrupted_tune_resumes_without_repeating_trials(
    tiny_bert, sentiment_files, tmp_path, space, monkeypatch, capsys
):
    import optuna

    import bertcls.train.train as train_mod

    real, calls, armed = train_mod.run, [], [True]

    def interrupt_second(cfg, on_eval=None):
        calls.append(cfg.learning_rate)
        if armed[0] and len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, on_eval)

    monkeypatch.setattr(train_mod, "run", interrupt_second)
    out = tmp_path / "tune"
    args = tune_args(tiny_bert, sentiment_files, out, space, "--trials", "3", "--pruner", "none")
    assert main(args) == 130
    assert "--resume" in capsys.readouterr().err
    partial = tmp_path / "tune.partial"
    study = optuna.load_study(study_name="bertcls-tune", storage=f"sqlite:///{partial / 'study.db'}")
    first = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(first) == 1 and not out.exists()

    calls.clear()
    armed[0] = False
    assert main(args + ["--resume"]) == 0
    assert len(calls) == 2  # 3 trials in all, 1 already finished
    study = optuna.load_study(study_name="bertcls-tune", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3 and complete[0].number == first[0].number
    assert complete[0].params == first[0].params and complete[0].value == first[0].value
    assert [t.state.name for t in study.trials].count("FAIL") == 1  # the interrupted one
    assert not partial.exists()


def test_pruner_stops_a_trial_at_its_first_validation(
    tiny_bert, sentiment_files, tmp_path, space, monkeypatch
):
    import optuna

    from bertcls.train import tune

    class PruneTrialOne(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 1

    monkeypatch.setattr(tune, "make_pruner", lambda kind: PruneTrialOne())
    out = tmp_path / "tune"
    extra = ("--trials", "3", "--eval-steps", "2", "--prune-after-epochs", "0")  # pruning from the start
    assert main(tune_args(tiny_bert, sentiment_files, out, space, *extra)) == 0
    states = [r["state"] for r in csv.DictReader(open(out / "trials.csv"))]
    assert states == ["complete", "pruned", "complete"]
    assert evals(out, 1) == 1 and evals(out, 0) >= 4  # 10+ steps per epoch, an evaluation every 2


def evals(out, n):
    lines = (out / "trials" / f"trial-{n:03d}" / "metrics.jsonl").read_text().splitlines()
    return sum(1 for line in lines if json.loads(line)["type"] == "eval")


def test_no_trial_is_pruned_in_its_first_epoch_and_reports_are_at_examples_seen(
    tiny_bert, sentiment_files, tmp_path, monkeypatch
):
    """Regression: pruning from the first evaluation cut TREC-6 trials near chance at step 25, and
    steps of different batch sizes were compared as if they were the same amount of training."""
    import optuna

    from bertcls.train import tune

    class PruneTrialOne(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 1

    monkeypatch.setattr(tune, "make_pruner", lambda kind: PruneTrialOne())
    space = tmp_path / "lr.yaml"
    space.write_text("learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    out = tmp_path / "tune"
    extra = ("--trials", "2", "--eval-steps", "2", "--epochs", "2", "--batch-size", "16")
    assert main(tune_args(tiny_bert, sentiment_files, out, space, *extra)) == 0
    # 160 texts, 10 steps per epoch: trial 1 runs its first epoch (evaluations at steps 2..10) and
    # stops at the first evaluation after it
    assert evals(out, 1) == 6 and evals(out, 0) == 10
    study = optuna.load_study(study_name="bertcls-tune", storage=f"sqlite:///{out / 'study.db'}")
    assert sorted(study.trials[0].intermediate_values) == [32 * k for k in range(1, 11)]
    assert study.trials[1].state.name == "PRUNED"


@pytest.mark.parametrize(
    "space_text, message",
    [
        ("lr: [1, 2]\n", "'lr' is not a `bertcls train` option"),
        ("train_file: [a.csv, b.csv]\n", "'train_file' says where data or results live"),
        ("learning_rate: {low: 1.0e-2, high: 1.0e-3}\n", "need numbers low < high"),
        ("batch_size: [0, 8]\n", "'batch_size': 0 is not a valid value (--batch-size=0 is invalid"),
        ("epochs: {low: 1, hi: 3}\n", "a range is {low: A, high: B}"),
        ("{}\n", "the search space is empty"),
    ],
)
def test_bad_search_spaces_are_one_line_errors(
    tiny_bert, sentiment_files, tmp_path, capsys, space_text, message
):
    f = tmp_path / "bad.yaml"
    f.write_text(space_text)
    out = tmp_path / "tune"
    assert main(tune_args(tiny_bert, sentiment_files, out, f)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_bad_tune_options(tiny_bert, sentiment_files, tmp_path, space, capsys):
    out = tmp_path / "tune"
    for extra, message in (
        (["--timeout", "soon"], "--timeout='soon' is invalid"),
        (["--trials", "0"], "--trials=0 is invalid"),
        (["--seeds", "1,2"], "tune runs one seed per trial"),
        (["--method", "setfit"], "--method='setfit' is invalid: tune searches fine-tuning options"),
    ):
        assert main(tune_args(tiny_bert, sentiment_files, out, space, *extra)) == 2
        assert message in capsys.readouterr().err
    args = tune_args(tiny_bert, sentiment_files, out, space)
    assert main(args[: args.index("--search")]) == 2
    assert "--search" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 2
    assert "no interrupted tune to resume" in capsys.readouterr().err
    assert not out.exists()


def test_help_describes_the_tune_directory(capsys):
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "The tune's directory: study.db, trials/, best_config.yaml" in out
        and "(the trained model)" not in out
    )
