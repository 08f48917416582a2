"""--report-to tensorboard,mlflow: the run's options, per-step metrics and final figures land in both."""

from __future__ import annotations

import importlib.util

import pytest
from helpers import train_args

from bertcls.cli import main

needs = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None or importlib.util.find_spec("mlflow") is None,
    reason="pip install 'bertcls[tracking]'",
)


@needs
def test_tensorboard_and_mlflow_receive_the_run(tiny_bert, sentiment_files, tmp_path):
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, db = tmp_path / "run", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    args = train_args(tiny_bert, sentiment_files, out, "--epochs", "2", "--eval-steps", "5")
    assert main([*args, "--report-to", "tensorboard,mlflow", "--mlflow-uri", db, "--name", "tracked"]) == 0

    events = EventAccumulator(str(out / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "validation/f1_macro", "final/test/accuracy"} <= tags
    assert len(events.Scalars("validation/f1_macro")) >= 3  # every --eval-steps evaluation

    client = MlflowClient(db)
    (run,) = client.search_runs([client.get_experiment_by_name("bertcls").experiment_id])
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "0.003" and run.data.params["epochs"] == "2"
    history = client.get_metric_history(run.info.run_id, "validation_f1_macro")
    assert len(history) >= 3 and all(0 <= m.value <= 1 for m in history)
    assert run.data.metrics["final_test_accuracy"] == pytest.approx(
        __import__("json").loads((out / "metrics.json").read_text())["test"]["accuracy"]
    )
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "README.md", "learning_curve.png"} <= files
    # artefacts beside the store, not in the current directory
    assert (tmp_path / "store" / "mlartifacts").is_dir()


def test_unknown_backend_and_missing_package_are_one_line_errors(
    tiny_bert, sentiment_files, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    assert main(train_args(tiny_bert, sentiment_files, out, "--report-to", "wandb")) == 2
    assert "--report-to='wandb' is invalid: choose from tensorboard, mlflow" in capsys.readouterr().err
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    assert main(train_args(tiny_bert, sentiment_files, out, "--report-to", "mlflow")) == 2
    err = capsys.readouterr().err
    assert "pip install 'bertcls[tracking]'" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "mlflow.db").exists()
