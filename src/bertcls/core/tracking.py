"""Experiment tracking: ``--report-to tensorboard,mlflow``.

TensorBoard through torch's own ``SummaryWriter`` (event files in the run directory, ``tensorboard/``);
MLflow through its fluent API, with a local SQLite store by default (MLflow 3 refuses new file stores).
Both receive the resolved options, the training loss and learning rate per logging step, every
validation metric per evaluation, the final validation/test/baseline figures, and MLflow the run's
small artefacts (metrics.json, the model card, the plots). Only the main process logs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from bertcls.core.errors import UserError

log = logging.getLogger("bertcls")

BACKENDS = ("tensorboard", "mlflow")
TB_DIR = "tensorboard"
ARTEFACTS = (
    "metrics.json",
    "README.md",
    "learning_curve.png",
    "confusion_matrix.png",
    "reliability.png",
    "pr_curve.png",
)
HINT = "pip install 'bertcls[tracking]'"


def _numbers(record: dict, prefix: str) -> dict[str, float]:
    from bertcls.core.scoring import scalar

    skip = {"step", "epoch", "n"}
    return {f"{prefix}{k}": float(v) for k, v in scalar(record).items() if k not in skip}


class Tracker:
    """Fan-out to the backends asked for; every method is a no-op when none is."""

    def __init__(self, backends: list[str], run_dir: Path, cfg: Any, final_dir: Path):
        self.tb = None
        self.mlflow = None
        if "tensorboard" in backends:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError(f"--report-to tensorboard needs the tensorboard package: {HINT}") from None
            self.tb = SummaryWriter(log_dir=str(run_dir / TB_DIR))
        if "mlflow" in backends:
            self.mlflow = _start_mlflow(cfg, final_dir)

    def params(self, options: dict) -> None:
        if self.tb is not None:
            rows = "\n".join(f"| {k} | {v} |" for k, v in options.items())
            self.tb.add_text("options", "| option | value |\n|---|---|\n" + rows)
        if self.mlflow is not None:
            # MLflow caps a parameter value at 6000 characters; options are short, lists included
            self.mlflow.log_params({k: str(v)[:6000] for k, v in options.items()})

    def record(self, rec: dict) -> None:
        """One entry of the run's history (``type`` train or eval)."""
        prefix = "train/" if rec.get("type") == "train" else "validation/"
        values, step = _numbers(rec, prefix), int(rec.get("step", 0))
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
        if self.mlflow is not None:
            self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in values.items()}, step=step)

    def final(self, result: dict, run_dir: Path, step: int) -> None:
        """The finished run's figures (and, for MLflow, its small files)."""
        values: dict[str, float] = {}
        for split in ("validation", "test"):
            values |= _numbers(result.get(split) or {}, f"final/{split}/")
            for who in ("baseline", "ensemble"):
                values |= _numbers((result.get(who) or {}).get(split) or {}, f"final/{who}/{split}/")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
        if self.mlflow is not None:
            self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in values.items()}, step=step)
            for name in ARTEFACTS:
                if (run_dir / name).is_file():
                    self.mlflow.log_artifact(str(run_dir / name))

    def close(self, failed: bool = False) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.mlflow is not None:
            self.mlflow.end_run(status="FAILED" if failed else "FINISHED")
            self.mlflow = None


def check_installed(backends: list[str]) -> None:
    """Before the run directory exists: every backend asked for can be imported (else the pip hint)."""
    import importlib.util

    for backend in backends:
        if importlib.util.find_spec(backend) is None:
            raise UserError(f"--report-to {backend} needs the {backend} package: {HINT}")


def default_mlflow_uri(final_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{final_dir.resolve().parent / 'mlflow.db'}"


def _start_mlflow(cfg: Any, final_dir: Path):
    try:
        import mlflow
    except ImportError:
        raise UserError(f"--report-to mlflow needs the mlflow package: {HINT}") from None
    uri = cfg.mlflow_uri or default_mlflow_uri(final_dir)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the SQLite store's schema set-up chatter
    try:
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(cfg.mlflow_experiment) is None:
            # artefacts beside a local store, not in the current directory (MLflow's default)
            where = (
                Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
                if uri.startswith("sqlite:///")
                else None
            )
            mlflow.create_experiment(cfg.mlflow_experiment, artifact_location=where and where.as_uri())
        mlflow.set_experiment(cfg.mlflow_experiment)
        mlflow.start_run(run_name=cfg.name or final_dir.name)
    except Exception as e:  # a store that cannot be opened: say which and how to fix, not a traceback
        raise UserError(
            f"--mlflow-uri={uri}: cannot open the MLflow store ({str(e).splitlines()[0]}); "
            f"give a writable sqlite:///PATH.db or a tracking server URI"
        ) from None
    log.info("MLflow: experiment '%s' in %s", cfg.mlflow_experiment, uri)
    return mlflow
