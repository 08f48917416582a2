"""``bertcls distill --teacher RUN_DIR --train-file ... [--unlabeled-file ...] --output-dir ...``:
task-specific knowledge distillation (Hinton et al. 2015) into a smaller BERT.

Reads top to bottom: setup (the teacher's labels, task, columns and window; the student: teacher layers,
a miniature preset or a local model with the same vocabulary; its initial weights in a temporary
directory), loop (`bertcls train`'s loop on the student with the teacher's logits as soft targets: loss =
alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * the usual loss on the labels; unlabelled texts
join the transfer set with soft targets only), save (a normal run directory; bertcls.json and the model
card record the teacher, the student and the teacher's and student's figures side by side).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from bertcls.core.config import require
from bertcls.core.errors import UserError
from bertcls.core.rundir import restart_hint
from bertcls.train.config import TrainConfig

log = logging.getLogger("bertcls")


@dataclass
class DistillConfig(TrainConfig):
    teacher: str | None = None
    """The trained classifier to distil (a bertcls run directory, `train --method setfit`'s included, or any HF sequence-classification directory)."""
    student_layers: str | None = None
    """Student = these teacher layers (e.g. 0,2,4; DistilBERT's initialisation). Default when no other student is given: every second layer."""
    student_preset: Literal["tiny", "mini", "small", "medium"] | None = None
    """Student = a Google BERT-miniature shape with the teacher's vocabulary, randomly initialised."""
    student: str | None = None
    """Student = this local model directory or built-in alias (its vocabulary must equal the teacher's)."""
    temperature: float = 2.0
    """Softmax (sigmoid for multi-label) temperature of the soft targets."""
    alpha: float = 0.5
    """Weight of the soft-target loss; 1 - alpha goes to the loss on the true labels."""
    unlabeled_file: str | None = None
    """Extra in-domain texts (one column --text-column, or one text per line in .txt) for the transfer set: soft targets only."""
    hidden_weight: float = 0.0
    """TinyBERT's hidden-state loss weight: MSE between each student layer's output and its teacher layer's (0: off; needs equal hidden sizes; runs the teacher on every batch)."""
    attention_weight: float = 0.0
    """TinyBERT's attention loss weight: MSE between each student layer's attention scores and its teacher layer's (0: off; needs equal head counts)."""

    def __post_init__(self) -> None:
        require(
            bool(self.teacher),
            "teacher",
            self.teacher,
            "give the trained model to distil (--teacher RUN_DIR)",
        )
        given = [x for x in (self.student_layers, self.student_preset, self.student) if x]
        require(
            len(given) <= 1, "student", given, "give one of --student-layers, --student-preset, --student"
        )
        require(self.temperature > 0, "temperature", self.temperature, "must be > 0")
        require(0 <= self.alpha <= 1, "alpha", self.alpha, "must be in [0, 1]")
        require(self.hidden_weight >= 0, "hidden_weight", self.hidden_weight, "must be >= 0 (0: off)")
        require(
            self.attention_weight >= 0, "attention_weight", self.attention_weight, "must be >= 0 (0: off)"
        )
        require(not self.resume, "resume", self.resume, RESUME_HINT)
        # the student learns by fine-tuning on soft targets; setfit would silently drop the teacher
        require(self.method == "finetune", "method", self.method, "distill fine-tunes the student")
        self.model = self.student or self.teacher  # checked as a model path by train; replaced in run()
        super().__post_init__()


# The soft targets and the student's initial weights live only in this process: an interrupted run
# cannot continue as `bertcls train --resume` would (it would drop the teacher), so it starts again.
RESUME_HINT = "an interrupted distill or prune starts again: run the same command with --overwrite"


# ---------------------------------------------------------------------------------------------------- loss
class DistillLoss(torch.nn.Module):
    """alpha * T^2 * soft-target loss + (1 - alpha) * ``hard`` on the rows that have a label."""

    def __init__(self, hard: torch.nn.Module, temperature: float, alpha: float, multi_label: bool):
        super().__init__()
        self.hard, self.t, self.alpha, self.multi = hard, temperature, alpha, multi_label

    def forward(self, logits, labels, teacher=None, labeled=None):
        t = self.t
        if self.multi:
            soft = F.binary_cross_entropy_with_logits(logits / t, torch.sigmoid(teacher / t))
        else:
            soft = F.kl_div(
                F.log_softmax(logits / t, -1),
                F.log_softmax(teacher / t, -1),
                log_target=True,
                reduction="batchmean",
            )
        loss = self.alpha * t * t * soft
        if self.alpha < 1 and labeled is not None and bool(labeled.any()):
            loss = loss + (1 - self.alpha) * self.hard(logits[labeled], labels[labeled])
        return loss


class Distillation:
    """What `train` needs to distil: the teacher's logits on every training row, unlabelled rows, the loss;
    with ``layer_map`` (student layer j stands for teacher layer layer_map[j]) and a hidden or attention
    weight, also TinyBERT's intermediate-layer loss (``attach`` the student, then ``layer_loss`` per batch)."""

    def __init__(self, cfg: DistillConfig, teacher, unlabeled: list[str], layer_map: list[int] | None = None):
        self.cfg, self.teacher, self.unlabeled, self.layer_map = cfg, teacher, unlabeled, layer_map
        self.match = None

    def attach(self, student) -> None:
        """Before the loop: hooks on the student (and teacher) for the intermediate-layer loss, if asked."""
        from bertcls.compress.layer_match import LayerMatch

        if self.layer_map is not None:  # given only when --hidden-weight or --attention-weight is > 0
            hw, aw = self.cfg.hidden_weight, self.cfg.attention_weight
            self.match = LayerMatch(self.teacher, student, self.layer_map, hw, aw)
            log.info("intermediate layers: student layer j <- teacher layer %s (hidden %s, attention %s)",
                     self.layer_map, hw, aw)  # fmt: skip

    @property
    def forward_kwargs(self) -> dict:
        return self.match.forward_kwargs if self.match is not None else {}

    def layer_loss(self, student_out, batch: dict):
        """The weighted intermediate-layer loss of this batch (0 when not asked for)."""
        return self.match.loss(student_out, batch) if self.match is not None else 0.0

    def annotate(self, enc_train: list[dict], tokenizer, labels: list[str]) -> list[dict]:
        from bertcls.core.batching import batched_logits
        from bertcls.core.longtext import encode_long

        taught = [self.teacher.config.id2label[i] for i in range(self.teacher.config.num_labels)]
        if taught != labels:
            raise UserError(
                f"the teacher ({getattr(self.cfg, 'teacher', None) or getattr(self.cfg, 'source', '')}) predicts "
                f"{taught}, the training data has {labels}; use data with the teacher's labels"
            )
        extra = []
        if self.unlabeled:
            extra = encode_long(
                tokenizer, self.unlabeled, None, self.cfg.max_length, self.cfg.long_text_spec()
            )
        width = len(labels)
        for e in extra:
            e.pop("doc", None)
            e["labels"] = np.zeros(width, np.float32) if self.cfg.multi_label else 0
            e["labeled"] = False
        rows = enc_train + extra
        if self.cfg.alpha == 0:  # the loss multiplies the soft targets by 0: spare the teacher's pass
            log.info("--alpha 0: the student learns from the labels alone; the teacher is not run")
            logits = np.zeros((len(rows), width), np.float32)
        else:
            log.info("teacher logits for %d transfer rows (%d unlabelled)", len(rows), len(extra))
            logits = batched_logits(self.teacher, rows, self.cfg.eval_batch_size, tokenizer.pad_token_id)
        for e, z in zip(rows, logits):
            e["teacher"] = z.astype(np.float32)
            e.setdefault("labeled", True)
        return rows

    def loss(self, hard: torch.nn.Module) -> torch.nn.Module:
        return DistillLoss(hard, self.cfg.temperature, self.cfg.alpha, self.cfg.multi_label)


# ---------------------------------------------------------------------------------------------------- run
def run(cfg: DistillConfig) -> dict:
    from bertcls.compress import student as students
    from bertcls.core.data import read_unlabeled
    from bertcls.core.models import (
        check_model_dir,
        is_sentence_classifier,
        load_trained,
        read_meta,
        resolve_model,
    )
    from bertcls.train.config import train_config
    from bertcls.train.train import run as train_run

    # ---- setup
    check_model_dir(cfg.teacher, need_classifier=True)
    meta = read_meta(cfg.teacher)
    teacher_multi = meta.get("task") == "multi_label" if meta else False
    if teacher_multi != cfg.multi_label:
        fix = "add --multi-label" if teacher_multi else "drop --multi-label"
        raise UserError(
            f"--teacher={cfg.teacher} is a {'multi' if teacher_multi else 'single'}-label model: {fix}"
        )
    # a `train --method setfit` teacher is the sentence model (mean pooling + its head), not the
    # encoder under a new random head, which is what a sequence-classification load would give
    teacher = load_trained(cfg.teacher, meta).eval()
    if is_sentence_classifier(cfg.teacher, meta) and (cfg.hidden_weight > 0 or cfg.attention_weight > 0):
        raise UserError(
            f"--teacher={cfg.teacher} is a SetFit (sentence-embedding) model: the layer losses need a "
            f"sequence-classification teacher; use --hidden-weight 0 --attention-weight 0"
        )
    unlabeled = read_unlabeled(cfg.unlabeled_file, cfg.text_column, cfg.encoding, "--unlabeled-file")
    torch.manual_seed(cfg.seed)  # a preset student's random weights follow --seed, not what ran before
    with tempfile.TemporaryDirectory(prefix="bertcls-student-") as tmp:
        init = Path(tmp)
        n, layers = teacher.config.num_hidden_layers, None
        if cfg.student:
            student_dir = resolve_model(cfg.student)  # a built-in alias (minilm-l6) or a directory
            students.check_same_vocabulary(cfg.teacher, student_dir, cfg.student)
            init, how = Path(student_dir), f"local model {cfg.student}"
        elif cfg.student_preset:
            how = students.from_preset(teacher, cfg.student_preset, init)
        else:
            layers = students.parse_layers(cfg.student_layers or ",".join(map(str, range(0, n, 2))), n)
            how = students.from_teacher_layers(teacher, layers, init)
        if init == Path(tmp):
            from bertcls.core.models import load_tokenizer

            load_tokenizer(cfg.teacher).save_pretrained(init)
        log.info("student: %s; teacher %s", how, cfg.teacher)
        layer_map = match_layers(cfg, teacher, init, layers)
        # ---- loop: train's, with the teacher's soft targets
        train_cfg = train_config(cfg, model=str(init))
        with restart_hint("distill", RESUME_HINT):
            result = train_run(train_cfg, distill=Distillation(cfg, teacher, unlabeled, layer_map))
    # ---- save: the teacher beside the student, in bertcls.json and the card
    return record(cfg, result, how, meta)


def match_layers(
    cfg: DistillConfig, teacher, student_dir: Path, layers: list[int] | None
) -> list[int] | None:
    """With --hidden-weight or --attention-weight: the teacher layer each student layer stands for (the
    layers it was copied from, else TinyBERT's uniform map), after checking the shapes allow matching."""
    if not (cfg.hidden_weight > 0 or cfg.attention_weight > 0):
        return None
    from transformers import AutoConfig

    from bertcls.compress.layer_match import check_shapes, uniform_map

    student = AutoConfig.from_pretrained(student_dir)
    check_shapes(teacher.config, student, cfg.hidden_weight, cfg.attention_weight)
    return layers or uniform_map(student.num_hidden_layers, teacher.config.num_hidden_layers)


def record(cfg: DistillConfig, result: dict, how: str, meta: dict) -> dict:
    from bertcls.core.cards import annotate_run
    from bertcls.core.config import save_yaml

    out = Path(result["output_dir"])
    # The command's own resolved options (run_config.yaml is the inner train run's, whose --model was
    # a temporary student): `bertcls distill --config distill_config.yaml --overwrite` repeats the run.
    save_yaml(cfg, out / "distill_config.yaml")
    teacher_metrics = (meta or {}).get("metrics", {})
    info = {"teacher": str(cfg.teacher), "student": how, "temperature": cfg.temperature, "alpha": cfg.alpha,
            "hidden_weight": cfg.hidden_weight, "attention_weight": cfg.attention_weight,
            "unlabeled_texts": bool(cfg.unlabeled_file), "teacher_metrics": teacher_metrics}  # fmt: skip
    split = "test" if "test" in result else "validation"
    rows = [f"| student | {result[split].get('accuracy', result[split].get('f1_micro', 0)):.4f} |"]
    if split in teacher_metrics:
        t = teacher_metrics[split]
        rows.insert(0, f"| teacher | {t.get('accuracy', t.get('f1_micro', 0)):.4f} |")
    annotate_run(
        out,
        "distillation",
        info,
        f"""
## Distillation

Distilled from `{cfg.teacher}` into {how} (options: `distill_config.yaml`): soft targets at temperature {cfg.temperature} (weight
{cfg.alpha}) and the labels (weight {1 - cfg.alpha:.2f}){", with unlabelled texts in the transfer set" if cfg.unlabeled_file else ""}.

| model | {split} accuracy (micro-F1 for multi-label) |
|---|---|
{chr(10).join(rows)}
""",
    )
    result["distillation"] = info
    return result


def summarize(result: dict) -> str:
    from bertcls.train.train import summarize as train_summary

    d = result["distillation"]
    return f"student: {d['student']} (teacher {d['teacher']})\n" + train_summary(result)
