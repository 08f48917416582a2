"""End of a `bertcls train` run, on the probabilities: temperature scaling (``--calibrate``), the binary
decision threshold (``--tune-threshold``), and their pictures (reliability diagram, PR curve).

The arithmetic lives in ``core.calibration`` and ``core.decision``; this module decides when it runs and
what the run directory reports. ``r`` is a ``core.report.FinishedRun``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from bertcls.core import calibration, metrics, plots
from bertcls.core.decision import Decision, tune

log = logging.getLogger("bertcls")


def _figures(logits: np.ndarray, y: np.ndarray, multi: bool) -> dict:
    probs = metrics.sigmoid(logits) if multi else metrics.softmax(logits)
    return {"ece": calibration.reliability(probs, y, multi)["ece"], "nll": calibration.nll(logits, y, multi)}


def calibrate(r: Any) -> dict | None:
    """--calibrate temperature: fit T on the validation logits, fold it into the model's output layer,
    and report ECE/NLL before and after. Returns the report (None when not asked)."""
    if r.cfg.calibrate != "temperature":
        return None
    _, raw = r.score_validation()
    y = r.targets(r.splits.validation)
    t = calibration.fit_temperature(raw, y, r.multi)
    calibration.bake(r.model, t)
    r.val_logits = raw / t  # what the baked model computes (no second forward pass)
    before, after = _figures(raw, y, r.multi), _figures(r.val_logits, y, r.multi)
    log.info(
        "temperature %.3f fitted on validation: ECE %.4f -> %.4f, NLL %.4f -> %.4f",
        t,
        before["ece"],
        after["ece"],
        before["nll"],
        after["nll"],
    )
    return {"method": "temperature", "temperature": t, "validation": {"before": before, "after": after}}


def calibrate_test(report: dict | None, test_logits: np.ndarray, y: np.ndarray, multi: bool) -> None:
    """Test ECE/NLL before and after (the test logits come from the calibrated model)."""
    if report is not None:
        t = report["temperature"]
        report["test"] = {
            "before": _figures(test_logits * t, y, multi),
            "after": _figures(test_logits, y, multi),
        }


def decide(r: Any, val_logits: np.ndarray | None) -> Decision | None:
    """--tune-threshold: the positive class's threshold maximising --metric on validation."""
    if not r.cfg.tune_threshold:
        return None
    y = r.targets(r.splits.validation)
    d = tune(metrics.softmax(val_logits), y, r.positive, r.cfg.metric)
    log.info("decision threshold for '%s' tuned on validation: %.2f", r.labels[d.positive], d.threshold)
    return d


def meta(r: Any, report: dict | None, decision: Decision | None) -> dict:
    """What bertcls.json keeps: the positive class, the threshold, the temperature folded into the model."""
    out: dict = {}
    if r.positive is not None:
        out["positive_label"] = r.labels[r.positive]
    if decision is not None:
        out["decision_threshold"] = decision.threshold
    if report is not None:
        out["temperature"] = report["temperature"]
    return out


def unscaled(probs: np.ndarray, temperature: float, multi: bool) -> np.ndarray:
    """The probabilities before temperature scaling, from the scaled ones (softmax/sigmoid of T * logits)."""
    if multi:
        return metrics.sigmoid(temperature * metrics.logit(probs, 1e-12))
    return metrics.softmax(temperature * np.log(np.clip(probs, 1e-30, 1.0)))


def draw(
    out: Path,
    probs: np.ndarray,
    y: np.ndarray,
    multi: bool,
    labels: list[str],
    positive: int | None,
    decision: Decision | None = None,
    temperature: float | None = None,
    title: str = "",
) -> list[str]:
    """reliability.png (before and after ``temperature`` when the model was calibrated), and for a binary
    task pr_curve.png with the operating point (``decision``'s threshold, else argmax) of one split's
    probabilities. Returns the files written."""
    panels = [("model", calibration.reliability(probs, y, multi))]
    if temperature is not None:
        before = calibration.reliability(unscaled(probs, temperature, multi), y, multi)
        panels = [("before temperature", before), (f"after (T = {temperature:.2f})", panels[0][1])]
    plots.reliability(panels, out / "reliability.png", title, multi)
    written = ["reliability.png"]
    if positive is not None and not multi:
        known = y >= 0
        hit = y[known] == positive
        if 0 < hit.sum() < len(hit):
            threshold = decision.threshold if decision is not None else 0.5
            scores = probs[known, positive]
            plots.pr_curve(hit, scores, out / "pr_curve.png", labels[positive], threshold, title)
            written.append("pr_curve.png")
    return written
