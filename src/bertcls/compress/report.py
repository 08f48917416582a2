"""``bertcls compress report TEACHER STUDENT... --test-file test.csv [--max-drop 1.0]``: one table and one
picture of what each compressed model costs and gains, measured here on the user's test data.

Reads top to bottom: setup (the models, the test texts; ONNX fp32 and int8 exports of every model made
into the report directory with `bertcls export`, so the model directories stay as they were), loop
(every model x runtime scored and timed in this one process, same threads, same batch size,
tokenisation included, best of two rounds that alternate the order), save (report.json, report.csv,
report.png: score against texts/s, marker area = size on disk; `--max-drop` marks the variants that lose
more than that many points against the first model in PyTorch, and the command exits 1 when none of the
others passes).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from bertcls.core.config import POSITIONAL, require, split_commas
from bertcls.core.errors import UserError

log = logging.getLogger("bertcls")

RUNTIMES = ("torch", "onnx", "onnx-int8")


class GateFailed(UserError):
    """No compressed variant stays within --max-drop: the report is written, the exit code is 1."""

    exit_code = 1


@dataclass
class CompressReportConfig:
    model_dirs: list[str] = field(default_factory=list, metadata={POSITIONAL: True})
    """The reference model first (the teacher), then the compressed ones (run directories)."""
    test_file: str | None = None
    """Labelled test data, scored by every model and runtime."""
    runtimes: list[str] = field(default_factory=lambda: list(RUNTIMES))
    """Which runtimes: torch (fp32), onnx (fp32), onnx-int8 (dynamic int8 weights)."""
    max_drop: float | None = None
    """Gate: a variant passes when its score is at most this many points (e.g. 1.0) below the first model in PyTorch; the command exits 1 when no other variant passes."""
    metric: str = "auto"
    """Score to compare: auto = accuracy (micro-F1 for multi-label), or f1_macro."""
    threads: int = 2
    """CPU threads for every runtime."""
    batch_size: int = 32
    """Texts per inference batch for every runtime."""
    max_texts: int | None = None
    """Score and time only the first N test rows (quick looks)."""
    output_dir: str | None = None
    """Where the report goes (default: runs/compress-report-<time>)."""

    def __post_init__(self) -> None:
        self.runtimes = split_commas(self.runtimes)
        require(
            len(self.model_dirs) >= 1,
            "model_dirs",
            self.model_dirs,
            "give the reference model first, then the others",
        )
        require(bool(self.test_file), "test_file", self.test_file, "give the labelled test data")
        bad = [r for r in self.runtimes if r not in RUNTIMES]
        require(not bad and self.runtimes, "runtimes", self.runtimes, f"choose from {', '.join(RUNTIMES)}")
        require(
            self.max_drop is None or self.max_drop >= 0, "max_drop", self.max_drop, "must be >= 0 (points)"
        )
        require(
            self.metric in ("auto", "accuracy", "f1_macro", "f1_micro"),
            "metric",
            self.metric,
            "auto, accuracy, f1_macro or f1_micro",
        )
        require(
            self.threads >= 1 and self.batch_size >= 1, "threads", self.threads, "threads and batch size >= 1"
        )


# ---------------------------------------------------------------------------------------------------- run
def run(cfg: CompressReportConfig) -> dict:
    from bertcls.core.io import staged_dir
    from bertcls.core.models import check_model_dir
    from bertcls.core.rundir import check_output_dir

    # ---- setup
    for d in cfg.model_dirs:
        check_model_dir(d, need_classifier=True)
    out = Path(cfg.output_dir or f"runs/compress-report-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_dir(
        out, "compress report", overwrite=None, inputs=[("MODEL_DIR", d) for d in cfg.model_dirs]
    )
    names = _names(cfg.model_dirs)
    with staged_dir(out) as tmp:
        loaded, rows = {}, {}
        for name, d in zip(names, cfg.model_dirs):
            for runtime in cfg.runtimes:
                loaded[(name, runtime)], mb = _load(d, runtime, tmp / "exports" / name, cfg)
                rows[(name, runtime)] = {"model": name, "runtime": runtime, "dir": str(d), "mb": round(mb, 2)}
        data = _test_data(cfg, next(iter(loaded.values())))
        # ---- loop: every variant scored once and timed twice, the order alternating between rounds
        for key, clf in loaded.items():
            rows[key] |= _score(clf, data, cfg.metric)
        order = list(loaded)
        for round_ in (order, order[::-1]):
            for key in round_:
                t = _time(loaded[key], data.texts, data.pairs)
                rows[key]["texts_per_s"] = max(rows[key].get("texts_per_s", 0.0), round(len(data) / t, 1))
        # ---- save
        result = _gate(list(rows.values()), cfg)
        _write(tmp, result, cfg)
    result["output_dir"] = str(out)
    if cfg.max_drop is not None and not any(r["passes"] for r in result["rows"][1:]):
        print(summarize(result))
        raise GateFailed(
            f"no compressed variant is within --max-drop {cfg.max_drop} points of {result['rows'][0]['model']} "
            f"(report: {out / 'report.csv'})"
        )
    return result


def _names(dirs: list[str]) -> list[str]:
    names = [Path(d).resolve().name for d in dirs]
    return [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]


def _load(model_dir: str, runtime: str, exports: Path, cfg):
    """The classifier for one runtime and its size on disk in MB (ONNX: exported into the report)."""
    from bertcls.classifier import TextClassifier

    if runtime == "torch":
        clf = TextClassifier.from_pretrained(model_dir, threads=cfg.threads, device="cpu", ensemble=False)
        files = list(Path(model_dir).glob("*.safetensors"))
    else:
        from bertcls.deploy import export

        where = exports / runtime
        quant = "int8" if runtime == "onnx-int8" else "none"
        log.info("exporting %s (%s) into the report", model_dir, runtime)
        export.run(
            export.ExportConfig(
                model_dir=model_dir,
                quantize=quant,
                output_dir=str(where),
                threads=cfg.threads,
                sample_file=cfg.test_file,  # the parity check on the texts the report scores
            )
        )
        clf = TextClassifier.from_pretrained(
            model_dir, backend="onnx", threads=cfg.threads, onnx_dir=where.resolve(), ensemble=False
        )
        files = [f for f in where.iterdir() if f.suffix in (".onnx", ".data")]
    clf.batch_size = cfg.batch_size
    return clf, sum(f.stat().st_size for f in files) / 1e6


def _test_data(cfg, clf):
    from bertcls.core.data import Columns, load

    meta = clf.meta
    cols = Columns(
        text=meta.get("text_column") or "text",
        text_pair=meta.get("text_pair_column"),
        label=meta.get("label_column") or "label",
    )
    data = load(cfg.test_file, cols, multi_label=clf.multi_label)
    return data.subset(range(min(len(data), cfg.max_texts))) if cfg.max_texts else data


def _score(clf, data, metric: str) -> dict:
    import numpy as np

    from bertcls.core import metrics
    from bertcls.core.scoring import label_targets

    probs = clf.predict_proba(data.texts, data.pairs)
    if clf.multi_label:
        y = np.stack(label_targets(data, clf.labels, True)).astype(int)
        m = metrics.multi_label(y, (probs >= clf.thresholds).astype(int), clf.labels)
        key = "f1_micro" if metric == "auto" else metric
    else:
        m = metrics.single_label(data.labels, clf.decide(probs), clf.labels)
        key = "accuracy" if metric == "auto" else metric
    if key not in m:
        raise UserError(f"--metric={metric}: not available for this task")
    return {"metric": key, "score": float(m[key]), "n": len(data)}


def _time(clf, texts, pairs) -> float:
    t0 = time.perf_counter()
    clf.predict_proba(texts, pairs)
    return time.perf_counter() - t0


def _gate(rows: list[dict], cfg) -> dict:
    ref = rows[0]
    for r in rows:
        r["drop_points"] = round(100 * (ref["score"] - r["score"]), 2)
        r["speedup"] = round(r["texts_per_s"] / ref["texts_per_s"], 2)
        r["passes"] = cfg.max_drop is None or r["drop_points"] <= cfg.max_drop
    return {"reference": ref["model"], "metric": ref["metric"], "max_drop": cfg.max_drop, "threads": cfg.threads,
            "batch_size": cfg.batch_size, "rows": rows}  # fmt: skip


def _write(out: Path, result: dict, cfg) -> None:
    import csv

    from bertcls.core.io import atomic_write_text

    atomic_write_text(out / "report.json", json.dumps(result, indent=2))
    keys = [
        "model",
        "runtime",
        "metric",
        "score",
        "drop_points",
        "texts_per_s",
        "speedup",
        "mb",
        "passes",
        "n",
        "dir",
    ]
    with open(out / "report.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(result["rows"])
    from bertcls.core.plots import tradeoff

    tradeoff(result["rows"], out / "report.png", result["metric"], cfg.max_drop)


def summarize(result: dict) -> str:
    lines = [
        f"{'model':<28} {'runtime':<10} {result['metric']:>9} {'drop':>6} {'texts/s':>9} {'x ref':>6} {'MB':>7}  gate"
    ]
    for r in result["rows"]:
        gate = "" if result["max_drop"] is None else ("pass" if r["passes"] else "FAIL")
        lines.append(
            f"{r['model'][:28]:<28} {r['runtime']:<10} {r['score']:>9.4f} {r['drop_points']:>6.2f} "
            f"{r['texts_per_s']:>9.1f} {r['speedup']:>6.2f} {r['mb']:>7.1f}  {gate}"
        )
    lines.append(f"report: {Path(result['output_dir']) / 'report.csv'} and report.png")
    return "\n".join(lines)
