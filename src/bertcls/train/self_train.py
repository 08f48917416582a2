"""``bertcls self-train --teacher RUN_DIR --train-file gold.csv --unlabeled-file texts.csv --output-dir ...``:
self-training for little labelled data and many unlabelled texts (curriculum pseudo-labelling).

Each round the current teacher labels the unlabelled texts; the most confident ``--keep`` fraction of each
predicted class joins the labelled rows; a fresh student (``--model``, from its pretrained weights, not
the teacher's) trains on the union with ``bertcls train``'s loop and options; the student is the next
round's teacher. The fraction grows round by round ("curriculum labelling", Cascante-Bonilla et al. 2021):
the first student learns from the teacher's surest labels, the later ones from all of them. A fresh
student each round, as in that paper, does not start from the weights that made the last round's mistakes
(a one-seed check here: a student started from the SetFit teacher's encoder scored 1.5 points less). A few-shot
teacher (``train --method setfit`` on tens of texts per class) is the intended start: on SST-2 it adds 1.9
points at 8 labelled texts per class and 1.3 at 64; on TREC-6 at 8 it loses 1.6 (README, "Few-shot").

Written here because neither transformers nor setfit has it: setfit's ``DistillationTrainer`` teaches a
student the teacher's embedding similarities on unlabelled texts in one pass, with no rounds and no
confidence selection. The per-round training is ``train.run``.

Reads top to bottom: setup (the teacher, the labelled and the unlabelled texts, the teacher's score on
the validation rows), loop (label, keep, train, per round, in a directory staged beside the output), save
(the round with the best validation --metric is the run directory, as train keeps its best epoch; its
``self_training/`` holds each round's training file, every pseudo-labelled row marked as such, and
bertcls.json and the model card record the rounds, and warn when the teacher scored better than all).
"""

from __future__ import annotations

import csv
import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertcls.core.config import require
from bertcls.core.errors import UserError
from bertcls.train.config import TrainConfig

log = logging.getLogger("bertcls")
SOURCE = "label_source"  # column of each round's training file: gold, or the teacher that labelled the row
CONFIDENCE = "confidence"  # the teacher's probability of the label it gave (empty for gold rows)


@dataclass
class SelfTrainConfig(TrainConfig):
    teacher: str | None = None
    """The first round's teacher: a trained run directory with the training data's labels (a `train --method setfit` run suits a few labelled texts per class)."""
    unlabeled_file: str | None = None
    """In-domain texts without labels (the --text-column of a data file, or one text per line in .txt) for the teachers to label."""
    keep: str = "0.5,0.75,1.0"
    """One round per value: the fraction of the unlabelled texts kept in that round, the most confident of each predicted class (so the classes keep the teacher's proportions)."""

    def __post_init__(self) -> None:
        require(
            bool(self.teacher), "teacher", self.teacher, "give the first round's teacher (--teacher RUN_DIR)"
        )
        require(
            bool(self.unlabeled_file),
            "unlabeled_file",
            self.unlabeled_file,
            "give the unlabelled texts (--unlabeled-file FILE)",
        )
        parse_keep(self.keep)
        for name, value, fix in (
            ("method", self.method != "finetune", "each round fine-tunes the student"),
            ("multi_label", self.multi_label, "self-training keeps confident single labels"),
            ("text_pair_column", self.text_pair_column, "self-training takes single texts"),
            ("seeds", self.seeds, "run self-train once per seed"),
            ("cv", self.cv, "cross-validate the teacher instead"),
            ("resume", self.resume, "an interrupted self-train starts again: run the same command"),
            ("dataset", self.dataset, "give --train-file (the labelled rows)"),
        ):
            require(not value, name, getattr(self, name), fix)
        super().__post_init__()


def parse_keep(text: str) -> list[float]:
    """'0.5,0.75,1.0' -> [0.5, 0.75, 1.0]: each in (0, 1], never decreasing."""
    try:
        keep = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        keep = []
    if not keep or any(not 0 < p <= 1 for p in keep) or keep != sorted(keep):
        raise UserError(
            f"--keep={text!r} is invalid: give one fraction per round in (0, 1], never decreasing, "
            f"e.g. 0.5,0.75,1.0"
        )
    return keep


def run(cfg: SelfTrainConfig) -> dict:
    from bertcls.core.data import Columns, load, read_unlabeled, split_validation
    from bertcls.core.io import staged_dir
    from bertcls.core.models import check_model_dir, read_meta
    from bertcls.core.rundir import check_output_dir, restart_hint
    from bertcls.core.runtime import setup_logging
    from bertcls.train.config import train_config
    from bertcls.train.prepare import default_output_dir
    from bertcls.train.seeds import promote, relocate
    from bertcls.train.train import run as train_run

    # ---- setup: the teacher, the labelled rows, the unlabelled texts; all checked before any training
    check_model_dir(cfg.teacher, need_classifier=True)
    teacher_meta = read_meta(cfg.teacher) or {}
    if teacher_meta.get("task") == "multi_label":
        raise UserError(
            f"--teacher={cfg.teacher} is a multi-label model; self-training takes single-label ones"
        )
    keep = parse_keep(cfg.keep)
    cols = Columns(text=cfg.text_column, label=cfg.label_column)
    gold = load(cfg.train_file, cols, encoding=cfg.encoding, skip_empty=cfg.skip_empty,
                missing_labels=cfg.missing_labels)  # fmt: skip
    taught = teacher_meta.get("labels")
    if taught is not None and set(map(str, taught)) != set(gold.labels):
        raise UserError(
            f"--teacher={cfg.teacher} predicts {sorted(map(str, taught))}, {cfg.train_file} has "
            f"{sorted(set(gold.labels))}; use a teacher trained for these labels"
        )
    unlabeled = read_unlabeled(cfg.unlabeled_file, cfg.text_column, cfg.encoding, "--unlabeled-file")
    if not unlabeled:
        raise UserError(f"--unlabeled-file={cfg.unlabeled_file}: no texts; give in-domain texts to label")
    # train checks the output too, but only in the last round: refuse a bad one before any round runs
    out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg)
    inputs = [("--model", cfg.model), ("--teacher", cfg.teacher), ("--train-file", cfg.train_file),
              ("--unlabeled-file", cfg.unlabeled_file), ("--test-file", cfg.test_file)]  # fmt: skip
    check_output_dir(out, "train", overwrite=cfg.overwrite, inputs=inputs)

    # ---- loop: label, keep the surest, train a fresh student; its model teaches the next round. All in a
    # directory staged beside the output, which replaces it only once every round is done
    rounds, results, teacher = [], [], cfg.teacher
    # Ctrl-C: the staging goes (train's "--resume" advice would name it) and --output-dir is untouched
    with (
        restart_hint("self-train", f"{out} is unchanged; run the same command again"),
        staged_dir(out) as tmp,
    ):
        files = tmp / "self_training"
        files.mkdir()
        validation = {}
        if cfg.validation_file:
            held = load(cfg.validation_file, cols, encoding=cfg.encoding, skip_empty=cfg.skip_empty)
        else:  # carved from the gold rows here: train's own split would take pseudo-labelled rows into
            # validation, and every round must validate on the same rows
            gold, held = split_validation(gold, cfg.validation_split, cfg.seed, False)
            held_file = write_rows(files / "validation.csv", gold_rows(held, cfg), cfg)
            validation = {"validation_file": str(held_file)}
        clf = classifier(cfg.teacher, cfg)  # scores validation, then labels round 1: loaded once
        teacher_score = validation_score(clf, held, cfg.metric)  # the bar every round should clear
        for i, fraction in enumerate(keep, 1):
            if i > 1:  # the last round's student teaches
                clf = classifier(teacher, cfg)
            labels, conf = pseudo_labels(clf, unlabeled)
            picked = most_confident(labels, conf, fraction)
            pseudo = pseudo_rows(unlabeled, labels, conf, picked, f"round {i} teacher", cfg)
            data = write_rows(files / f"round{i}.csv", gold_rows(gold, cfg) + pseudo, cfg)
            log.info("self-training round %d/%d: %d of %d unlabelled texts kept (%s), teacher %s",
                     i, len(keep), len(picked), len(unlabeled), per_class(labels, picked), teacher)  # fmt: skip
            run_dir = tmp / "rounds" / f"round{i}"
            result = train_run(train_config(cfg, train_file=str(data), output_dir=str(run_dir), **validation))
            setup_logging(None)  # stop writing into that round's train.log
            rounds.append(round_record(i, fraction, teacher, labels, picked, result, cfg.metric))
            results.append(result)
            teacher = str(run_dir)

        # ---- save: the round that scored best on validation is the run directory (as train keeps its best
        # epoch: on TREC-6 the first round's surest labels beat the later rounds' fuller, noisier sets);
        # each round's training file stays in self_training/, the other rounds' models are dropped
        best = best_round(rounds, cfg.metric)
        promote(tmp / "rounds" / f"round{best}", tmp, out)
        relocate(tmp, tmp, out)  # its training and validation files: out/self_training/, not the staging
        shutil.rmtree(tmp / "rounds")  # the other rounds' models: made by this command, each a full copy
        result = results[best - 1]
        record(cfg, tmp, result, rounds, best, len(unlabeled), teacher_score)
    result["output_dir"] = str(out)
    return result


def best_round(rounds: list[dict], metric: str) -> int:
    """The round whose student scores best on validation by ``metric``; ties go to the later round (more
    texts behind the same score): ``best_seed`` keeps the first of a tie, so it is given the last first."""
    from bertcls.train.seeds import best_seed

    return best_seed({r["round"]: {"validation": {metric: r[metric]}} for r in reversed(rounds)}, metric)


def classifier(model_dir: str, cfg: SelfTrainConfig):
    """A teacher as ``TextClassifier``, predicting in --eval-batch-size batches."""
    from bertcls import TextClassifier

    clf = TextClassifier.from_pretrained(model_dir)
    clf.batch_size = cfg.eval_batch_size
    return clf


def pseudo_labels(clf, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The teacher's label for every text and its probability."""
    probs = clf.predict_proba(texts)
    top = probs.argmax(1)
    return [clf.labels[j] for j in top], probs[np.arange(len(texts)), top]


def most_confident(labels: list[str], conf: np.ndarray, fraction: float) -> list[int]:
    """Indices of the ``fraction`` most confident texts of each predicted class, in input order."""
    picked: list[int] = []
    for label in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        idx.sort(key=lambda i: -conf[i])  # stable: ties keep input order
        picked += idx[: int(round(fraction * len(idx)))]
    return sorted(picked)


def gold_rows(data, cfg: SelfTrainConfig) -> list[dict]:
    return [{cfg.text_column: t, cfg.label_column: lab, SOURCE: "gold", CONFIDENCE: ""}
            for t, lab in zip(data.texts, data.labels)]  # fmt: skip


def pseudo_rows(texts, labels, conf, picked: list[int], source: str, cfg: SelfTrainConfig) -> list[dict]:
    """The picked texts with the teacher's labels, marked with ``source`` and the teacher's confidence."""
    return [
        {cfg.text_column: texts[i], cfg.label_column: labels[i], SOURCE: source, CONFIDENCE: f"{conf[i]:.4f}"}
        for i in picked
    ]


def write_rows(path: Path, rows: list[dict], cfg: SelfTrainConfig) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[cfg.text_column, cfg.label_column, SOURCE, CONFIDENCE])
        w.writeheader()
        w.writerows(rows)
    return path


def per_class(labels: list[str], picked: list[int]) -> dict[str, int]:
    return dict(sorted(Counter(labels[i] for i in picked).items()))


def validation_score(clf, held, metric: str) -> float | None:
    """The classifier's ``metric`` on the validation rows (None for a metric that needs the loss)."""
    from bertcls.core.metrics import single_label

    return single_label(held.labels, clf.predict(list(held.texts)), clf.labels).get(metric)


def round_record(i, fraction, teacher, labels, picked, result, metric: str) -> dict:
    val = result.get("validation", {})
    return {
        "round": i,
        "keep": fraction,
        "teacher": str(teacher) if i == 1 else f"round {i - 1}",
        "kept": len(picked),
        "kept_per_class": per_class(labels, picked),
        "validation": val.get("accuracy"),
        metric: val.get(metric),
    }


def record(cfg: SelfTrainConfig, out: Path, result: dict, rounds: list[dict], best: int, n_unlabeled: int,
           teacher_score: float | None) -> None:  # fmt: skip
    """self_train_config.yaml, bertcls.json's ``self_training`` and the model card's section, in ``out``."""
    from bertcls.core.cards import annotate_run
    from bertcls.core.config import save_yaml
    from bertcls.core.metrics import is_better

    save_yaml(cfg, out / "self_train_config.yaml")  # `bertcls self-train --config ... --overwrite` repeats it
    m, chosen = cfg.metric, rounds[best - 1]
    teacher_better = (teacher_score is not None and chosen[m] is not None
                      and is_better(m, teacher_score, chosen[m]))  # fmt: skip
    info = {"teacher": str(cfg.teacher), "unlabeled_texts": n_unlabeled, "rounds": rounds, "metric": m,
            "best_round": best, "teacher_validation": teacher_score, "teacher_better": teacher_better}  # fmt: skip
    lines = [f"| {r['round']}{' (this model)' * (r['round'] == best)} | {r['teacher']} | {r['keep']} | "
             f"{r['kept']} | {fmt4(r['validation'])} | {fmt4(r[m])} |" for r in rounds]  # fmt: skip
    warning = f"\n**Warning: {teacher_warning(info)}.**\n" if teacher_better else ""
    annotate_run(
        out,
        "self_training",
        info,
        f"""
## Self-training

Self-trained from `{cfg.teacher}` on {n_unlabeled} unlabelled texts (options: `self_train_config.yaml`;
each round's training file, pseudo-labelled rows marked in `{SOURCE}`: `self_training/`). This model is
round {best}, the best by validation {m}; the teacher scores {fmt4(teacher_score)} on the same rows.
{warning}
| round | teacher | kept fraction | texts kept | validation accuracy | validation {m} |
|---|---|---|---|---|---|
{chr(10).join(lines)}
""",
    )
    result["self_training"] = info


def fmt4(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def teacher_warning(info: dict) -> str:
    best = info["rounds"][info["best_round"] - 1][info["metric"]]
    return (
        f"the teacher scores better on validation {info['metric']} ({info['teacher_validation']:.4f}) than "
        f"every round ({best:.4f}): self-training did not help on these texts; keep the teacher, or try a "
        f"smaller --keep"
    )


def summarize(result: dict) -> str:
    from bertcls.train.train import summarize as train_summary

    s = result["self_training"]
    m = s["metric"]
    steps = ", ".join(
        f"round {r['round']}: {r['kept']} kept, validation {m} {fmt4(r[m])}" for r in s["rounds"]
    )
    lines = [f"self-trained from {s['teacher']} on {s['unlabeled_texts']} unlabelled texts ({steps}); "
             f"this model is round {s['best_round']}, the best on validation (teacher: {fmt4(s['teacher_validation'])})"]  # fmt: skip
    if s["teacher_better"]:
        lines.append("warning: " + teacher_warning(s))
    return "\n".join([*lines, train_summary(result)])
