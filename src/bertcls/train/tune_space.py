"""`bertcls tune --search space.yaml`: the search space, one train option per key.

    learning_rate: {low: 1.0e-5, high: 3.0e-4, log: true}   # a float range (log scale)
    epochs: {low: 1, high: 4}                               # an int range (both ends ints; step: 1)
    batch_size: [16, 32, 64]                                # a choice
    long_text: [truncate, chunks]
    warmup_ratio: 0.06                                      # fixed for every trial

Keys are `bertcls train` options (dashes or underscores). Each range end and each choice is checked
as a train option before the first trial, so a bad value is a one-line error naming the file and key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertcls.core.errors import UserError

# Options that say where data and results live, or how the tune itself runs: never searched.
NOT_SEARCHABLE = {
    "train_file",
    "validation_file",
    "test_file",
    "dataset",
    "output_dir",
    "overwrite",
    "resume",
    "seeds",
    "seed_workers",
    "name",
    "report_to",
    "mlflow_uri",
    "mlflow_experiment",
    "threads",
}


@dataclass
class Param:
    name: str
    kind: str  # "float", "int", "choice" or "fixed"
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: list | None = None

    def suggest(self, trial) -> Any:
        if self.kind == "fixed":
            return self.choices[0]
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def extremes(self) -> list:
        return list(self.choices) if self.kind in ("choice", "fixed") else [self.low, self.high]


def _param(name: str, spec: Any, where: str) -> Param:
    if isinstance(spec, list):
        if not spec or len({repr(v) for v in spec}) != len(spec):
            raise UserError(f"{where}: a choice needs distinct values, got {spec!r}")
        return Param(name, "choice", choices=spec)
    if not isinstance(spec, dict):
        return Param(name, "fixed", choices=[spec])
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown or "low" not in spec or "high" not in spec:
        raise UserError(
            f"{where}: a range is {{low: A, high: B}} with optional log: true and step: S, got {spec!r}"
        )
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers or low >= high or (log and low <= 0):
        raise UserError(f"{where}: need numbers low < high (and low > 0 with log: true), got {spec!r}")
    kind = (
        "int" if isinstance(low, int) and isinstance(high, int) and not isinstance(step, float) else "float"
    )
    return Param(name, kind, low=low, high=high, log=log, step=step)


def load_space(path: str, base: Any) -> dict[str, Param]:
    """The search space in ``path``, every key and value checked as a train option on top of ``base``."""
    from bertcls.core.config import load_yaml
    from bertcls.train.config import TrainConfig, train_config

    if not Path(path).is_file():
        raise UserError(f"--search={path}: file not found; give the search space YAML")
    raw = load_yaml(path)
    if not raw:
        raise UserError(f"--search={path}: the search space is empty; give at least one option to search")
    options = {f.name for f in dataclasses.fields(TrainConfig) if f.init}
    space: dict[str, Param] = {}
    for key, spec in raw.items():
        name = str(key).replace("-", "_")
        where = f"--search={path}: '{key}'"
        if name not in options:
            raise UserError(f"{where} is not a `bertcls train` option; see bertcls train --help")
        if name in NOT_SEARCHABLE:
            raise UserError(
                f"{where} says where data or results live and cannot be searched; set it in --config"
            )
        p = _param(name, spec, where)
        for value in p.extremes():  # each value must make a valid train config
            try:
                train_config(base, **{name: value})
            except UserError as e:
                raise UserError(f"{where}: {value!r} is not a valid value ({e})") from None
        space[name] = p
    return space
