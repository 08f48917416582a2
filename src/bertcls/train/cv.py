"""``bertcls train --cv K``: stratified K-fold cross-validation (iterative stratification for multi-label).

Reads top to bottom: setup (the training rows and the validation file's, pooled; the folds), loop (each
fold is a normal `train` run in ``folds/fold-K`` on the other folds, its validation carved from them, its
test set the held-out fold, written as JSONL in ``data/fold-K``), save (out-of-fold predictions of every
row, per-fold and mean +- std metrics, optionally a final model on all the data at the top). Staged
beside ``--output-dir`` and swapped in only when every fold has finished.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from bertcls.core import metrics
from bertcls.core.config import save_yaml
from bertcls.core.data import TextData
from bertcls.core.errors import UserError
from bertcls.core.io import atomic_write_text, staged_dir

log = logging.getLogger("bertcls")

SUMMARY_FILE = "cv_summary.json"
OOF_FILE = "oof_predictions.csv"


# ---------------------------------------------------------------------------------------------------- run
def run(cfg, train_one) -> dict:
    """``train_one``: `bertcls train`'s run(cfg) for one fold (passed in: train.train imports this module)."""
    from bertcls.core.runtime import setup_logging
    from bertcls.train.prepare import read
    from bertcls.train.seeds import promote, relocate, result_dir

    final = result_dir(cfg)
    data = read(cfg, cfg.train_file)
    if cfg.validation_file:
        data = concat(data, read(cfg, cfg.validation_file))
    fold_of = assign_folds(data, cfg.cv, cfg.seed, cfg.multi_label)
    with staged_dir(final) as tmp:
        save_yaml(cfg, tmp / "cv_config.yaml")
        results, oof = [], []
        for k in range(cfg.cv):
            log.info("fold %d of %d: %d held-out rows", k + 1, cfg.cv, int((fold_of == k).sum()))
            fold_cfg = _fold_config(cfg, data, fold_of, k, tmp)
            train_one(fold_cfg)
            setup_logging(None)
            run_dir = Path(fold_cfg.output_dir)
            results.append(json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")))
            oof.append(_predict_held_out(run_dir, data, np.flatnonzero(fold_of == k), k))
        summary = summarize_folds(results, cfg.metric)
        summary["oof"] = write_oof(tmp / OOF_FILE, data, oof, cfg.multi_label)
        if cfg.cv_final:
            train_one(
                dataclasses.replace(
                    cfg, cv=None, cv_final=False, output_dir=str(tmp / "final"), overwrite=False
                )
            )
            setup_logging(None)
            promote(tmp / "final", tmp, final)
            text = (tmp / "README.md").read_text(encoding="utf-8")
            atomic_write_text(tmp / "README.md", text + cv_section(summary))
        else:
            atomic_write_text(
                tmp / "README.md", f"# {final.name}: {cfg.cv}-fold cross-validation\n" + cv_section(summary)
            )
        atomic_write_text(tmp / SUMMARY_FILE, json.dumps(summary, indent=2))
        for fold in (tmp / "folds").iterdir():  # the paths the fold runs will have once swapped in
            relocate(fold, tmp, final)
    summary["output_dir"] = str(final)
    summary["final_model"] = cfg.cv_final
    return summary


def concat(a: TextData, b: TextData) -> TextData:
    pairs = None if a.pairs is None else a.pairs + (b.pairs or [""] * len(b))
    return TextData(a.texts + b.texts, pairs, a.labels + b.labels, a.rows + b.rows, a.source)


def assign_folds(data: TextData, k: int, seed: int, multi: bool) -> np.ndarray:
    """The fold (0..k-1) of every row: stratified by label, or by iterative stratification
    (Sechidis et al. 2011, the iterative-stratification package) for multi-label."""
    from collections import Counter

    if multi:
        names = sorted({lab for labs in data.labels for lab in labs})
        y = np.array([[lab in labs for lab in names] for labs in data.labels], dtype=int)
        counts = dict(zip(names, y.sum(axis=0).tolist()))
    else:
        counts = Counter(data.labels)
    smallest = min(counts, key=counts.get)
    if k > counts[smallest]:
        raise UserError(
            f"--cv={k} is invalid: label '{smallest}' has only {counts[smallest]} row(s) to split ({data.source}), "
            f"so some folds would have none; use --cv {max(2, counts[smallest])} or fewer"
        )
    fold_of = np.empty(len(data), dtype=int)
    x = np.zeros((len(data), 1))
    if multi:
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        splits = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y)
    else:
        from sklearn.model_selection import StratifiedKFold

        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, data.labels)
    for i, (_, held_out) in enumerate(splits):
        fold_of[held_out] = i
    return fold_of


def _write_jsonl(path: Path, cfg, data: TextData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(len(data)):
            row = {cfg.text_column: data.texts[i], cfg.label_column: data.labels[i]}
            if data.pairs is not None:
                row[cfg.text_pair_column] = data.pairs[i]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _fold_config(cfg, data: TextData, fold_of: np.ndarray, k: int, tmp: Path):
    """Fold k: train on the other folds (validation carved from them), test on fold k."""
    from bertcls.train.prepare import _split

    rest, held = data.subset(np.flatnonzero(fold_of != k)), data.subset(np.flatnonzero(fold_of == k))
    train, val = _split(rest, cfg.validation_split, cfg, "--validation-split")
    where = tmp / "data" / f"fold-{k + 1}"
    for name, part in (("train", train), ("validation", val), ("held_out", held)):
        _write_jsonl(where / f"{name}.jsonl", cfg, part)
    return dataclasses.replace(
        cfg,
        cv=None,
        cv_final=False,
        train_file=str(where / "train.jsonl"),
        validation_file=str(where / "validation.jsonl"),
        test_file=str(where / "held_out.jsonl"),
        encoding="utf-8",
        output_dir=str(tmp / "folds" / f"fold-{k + 1}"),
        overwrite=False,
        name=f"{cfg.name or 'cv'} (fold {k + 1} of {cfg.cv})",
    )


def _predict_held_out(run_dir: Path, data: TextData, idx: np.ndarray, k: int) -> tuple:
    """The fold model's probabilities and decisions on its held-out rows (the ensemble where trained)."""
    from bertcls import TextClassifier

    clf = TextClassifier.from_pretrained(run_dir)
    held = data.subset(idx)
    probs = clf.predict_proba(held.texts, held.pairs)
    return idx, k, probs, clf.decide(probs), clf.labels


# ---------------------------------------------------------------------------------------------------- save
def write_oof(path: Path, data: TextData, oof: list, multi: bool) -> dict:
    """oof_predictions.csv (every row once, in file order) and the metrics of those predictions."""
    import csv

    from bertcls.core.scoring import scalar

    n, labels = len(data), oof[0][4]  # every fold's model has the same labels (all of them in training)
    probs, preds, fold = np.zeros((n, len(labels))), [None] * n, np.zeros(n, dtype=int)
    for idx, k, p, d, _ in oof:
        probs[idx], fold[idx] = p, k + 1
        for i, label in zip(idx, d):
            preds[i] = label

    def show(v):
        return ";".join(v) if isinstance(v, list) else v

    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "fold", "text", "label", "predicted"] + [f"p_{lab}" for lab in labels])
        for i in range(n):
            row = [
                data.rows[i] if data.rows else i + 1,
                fold[i],
                data.texts[i],
                show(data.labels[i]),
                show(preds[i]),
            ]
            w.writerow(row + [f"{p:.4f}" for p in probs[i]])
    if multi:
        y = np.array([[lab in labs for lab in labels] for labs in data.labels], dtype=int)
        yp = np.array([[lab in p for lab in labels] for p in preds], dtype=int)
        m = metrics.multi_label(y, yp, labels, metrics.logit(probs))
    else:
        m = metrics.single_label(data.labels, preds, labels)
    return scalar(m)


def summarize_folds(results: list[dict], metric: str) -> dict:
    """Per fold, the held-out scores; per score, mean, std and 95% interval over the folds."""
    from bertcls.train.seeds import interval, scalars

    held = [scalars(r["test"]) for r in results]
    keys = [k for k in held[0] if all(k in h for h in held)]
    out = {"folds": len(results), "metric": metric, "per_fold": held}
    out["summary"] = {k: interval([h[k] for h in held]) for k in keys}
    return out


def cv_section(summary: dict) -> str:
    keys = [
        k
        for k in dict.fromkeys([summary["metric"], "accuracy", "f1_macro", "f1_micro", "ece"])
        if k in summary["summary"]
    ]
    lines = [
        "",
        f"## {summary['folds']}-fold cross-validation",
        "",
        "Each fold's model trained on the other folds and scored on the held-out one (mean +- std, 95% "
        f"t-interval over the folds); out-of-fold predictions of every row in `{OOF_FILE}`, fold runs in "
        f"`folds/`, all figures in `{SUMMARY_FILE}`.",
        "",
        "| metric | mean +- std | 95% interval | per fold | out-of-fold |",
        "|---|---|---|---|---|",
    ]
    for k in keys:
        s = summary["summary"][k]
        ci = s.get("ci95")
        oof = summary["oof"].get(k)
        lines.append(
            f"| {k} | {s['mean']:.4f} +- {s['std']:.4f} | {f'{ci[0]:.4f} .. {ci[1]:.4f}' if ci else ''} | "
            f"{' '.join(f'{v:.4f}' for v in s['values'])} | {'' if oof is None else f'{oof:.4f}'} |"
        )
    return "\n".join(lines) + "\n"


def summary_text(summary: dict) -> str:
    s = summary["summary"]
    keys = [k for k in dict.fromkeys([summary["metric"], "accuracy", "f1_macro"]) if k in s]
    lines = [
        f"{summary['folds']}-fold cross-validation (held-out folds, mean +- std; out-of-fold in brackets)"
    ]
    for k in keys:
        oof = summary["oof"].get(k)
        lines.append(
            f"  {k:<12} {s[k]['mean']:.4f} +- {s[k]['std']:.4f} ({'' if oof is None else f'{oof:.4f}'})"
        )
    out = Path(summary["output_dir"])
    model = (
        f"final model on all data in {out}" if summary.get("final_model") else f"fold runs in {out / 'folds'}"
    )
    lines.append(f"{model}; predictions: {out / OOF_FILE}; all figures: {out / SUMMARY_FILE}")
    return "\n".join(lines)
