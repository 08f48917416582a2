"""`bertcls tune`, the end: trials.csv, tune_summary.json, the optimisation history and parameter
importances (Optuna's matplotlib plots), a README, and disk kept small (only the best trial keeps its model
weights; every trial keeps its metrics, config and plots)."""

from __future__ import annotations

import csv
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from bertcls.core.io import atomic_write_text

log = logging.getLogger("bertcls")

WEIGHTS = ("model.safetensors", "baseline.skops")


def _rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = t.user_attrs.get("seconds")
        rows.append(
            {"trial": t.number, "state": t.state.name.lower(), "value": t.value, "seconds": seconds}
            | {f"param:{k}": v for k, v in t.params.items()}
            | {"dir": t.user_attrs.get("dir", "")}
        )
    return rows


def _plots(study, work: Path) -> tuple[list[str], dict | None, str | None]:
    """optimization_history.png and param_importances.png; importances (None with a reason when there is
    too little to say: fewer than two finished trials, or a single searched option)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    from bertcls.core.io import atomic_open

    written, importances, why = [], None, None

    def save(ax, name: str) -> None:
        fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
        fig.set_size_inches(8, 4.5)
        with atomic_open(work / name, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(name)

    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore")
        save(ovm.plot_optimization_history(study), "optimization_history.png")
        try:
            importances = optuna.importance.get_param_importances(study)
            save(ovm.plot_param_importances(study), "param_importances.png")
        except (RuntimeError, ValueError) as e:
            why = str(e).splitlines()[0]
    return written, importances, why


def write_report(study, cfg: Any, space: dict, work: Path, best) -> dict:
    rows = _rows(study)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(work / "trials.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    written, importances, why = _plots(study, work)
    for r in rows:  # the best trial keeps its model; the others keep their metrics (disk: N x model size)
        if r["dir"] and r["trial"] != best.number:
            for name in WEIGHTS:
                (work / r["dir"] / name).unlink(missing_ok=True)
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in ("complete", "pruned", "fail")}
    seconds = sum(r["seconds"] or 0 for r in rows)
    summary = {
        "metric": cfg.metric,
        "direction": study.direction.name.lower(),
        "counts": counts,
        "minutes": seconds / 60,
        "best": {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "dir": best.user_attrs.get("dir"),
        },
        "space": {k: {kk: vv for kk, vv in vars(p).items() if vv is not None} for k, p in space.items()},
        "importances": importances,
        "importances_skipped": why,
        "plots": written,
    }
    atomic_write_text(work / "tune_summary.json", json.dumps(summary, indent=2, default=str))
    atomic_write_text(work / "README.md", _readme(summary, rows))
    log.info("best trial %d: %s %.4f %s", best.number, cfg.metric, best.value, best.params)
    return summary


def _readme(summary: dict, rows: list[dict]) -> str:
    params = sorted({k for r in rows for k in r if k.startswith("param:")})
    head = (
        "| trial | state | validation "
        + summary["metric"]
        + " | "
        + " | ".join(p[6:] for p in params)
        + " | s |"
    )
    lines = [head, "|" + "---|" * (len(params) + 4)]
    for r in rows:
        v = "" if r["value"] is None else f"{r['value']:.4f}"
        cells = " | ".join(
            "" if r.get(p) is None else f"{r[p]:.4g}" if isinstance(r[p], float) else str(r[p])
            for p in params
        )
        lines.append(f"| {r['trial']} | {r['state']} | {v} | {cells} | {r['seconds'] or ''} |")
    best = summary["best"]
    imp = summary["importances"]
    imp_text = (
        ", ".join(f"{k} {v:.2f}" for k, v in imp.items())
        if imp
        else f"not computed ({summary['importances_skipped']})"
    )
    return f"""# bertcls tune

Best: trial {best["number"]}, validation {summary["metric"]} **{best["value"]:.4f}** with {best["params"]}.
Train it (with the test file, if the config has one): `bertcls train --config best_config.yaml --output-dir runs/<name>`.

{summary["counts"]["complete"]} trials finished, {summary["counts"]["pruned"]} pruned, {summary["counts"]["fail"]} failed;
{summary["minutes"]:.1f} minutes of training. Parameter importances (fANOVA): {imp_text}.
The study is `study.db` (Optuna, SQLite); `optimization_history.png`, `param_importances.png`; every
trial's run is in `trials/` (only the best keeps its weights).

{chr(10).join(lines)}
"""
