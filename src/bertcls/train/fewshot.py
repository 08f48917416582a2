"""``bertcls train --method setfit``: few-shot training for tens of labelled texts per class.

SetFit (Tunstall et al. 2022): contrastive fine-tuning of a sentence encoder on pairs of training texts
(same label: similar; different labels: dissimilar), then a logistic regression on the embeddings, or
(``--setfit-head end-to-end``) setfit's differentiable linear head trained with the encoder. The
setfit library does both phases; this module feeds it bertcls's data and options and turns the result into
a bertcls run directory: the encoder, its pooling and the regression as one torch module
(``core.sentence_model``), scored, calibrated, compared with TF-IDF and saved by the same code as every
fine-tuning run (``core.report.finish_run``), so predict, evaluate, serve and export read it like any other.

Reads top to bottom: setup (the same checks and run directory as `train`), loop (setfit), save.
"""

from __future__ import annotations

import logging
import shutil
import time

import torch

from bertcls.core import rundir, tracking
from bertcls.core.config import to_dict
from bertcls.core.decision import positive_class
from bertcls.core.errors import UserError
from bertcls.core.language import language_fit
from bertcls.core.runtime import make_accelerator
from bertcls.core.scoring import label_targets, scalar
from bertcls.train.config import TrainConfig
from bertcls.train.prepare import check_label_options, prepare

log = logging.getLogger("bertcls")
INSTALL = "pip install 'bertcls[fewshot]'"


def run(cfg: TrainConfig) -> dict:
    from bertcls.core.sentence_model import SentenceClassifier, head_as_linear

    # ---- setup: everything that can fail on user input happens before the run directory exists
    setfit = require_setfit()
    p = prepare(cfg)
    model_path, run_dir, splits, labels, tokenizer = p.model_path, p.run_dir, p.splits, p.labels, p.tokenizer
    body, pooling, normalize = load_body(setfit, model_path, cfg)
    probe = SentenceClassifier(
        body[0].auto_model, torch.nn.Linear(1, len(labels)), pooling, normalize, labels
    )
    check_label_options(cfg, labels, probe)
    tracking.check_installed(cfg.report_to)
    accelerator = make_accelerator("no", 1)
    targets = label_targets(splits.train, labels, cfg.multi_label)
    with rundir.session(run_dir, cfg, accelerator):
        log.info("setfit: %d training texts, labels %s", len(splits.train), labels)
        tracker = tracking.Tracker(cfg.report_to, run_dir.work, cfg, run_dir.final)
        tracker.params(to_dict(cfg))
        fit = language_fit(splits.train.texts, tokenizer, cfg.model)
        if fit.warning:
            log.warning(fit.warning)
        # ---- loop: the contrastive phase, then the regression head (setfit's Trainer)
        t0 = time.perf_counter()
        model, history, pairs = train_setfit(
            setfit, body, cfg, splits.train.texts, targets, len(labels), run_dir.work
        )
        seconds = time.perf_counter() - t0
        head = head_as_linear(model.model_head, len(labels))
        clf = SentenceClassifier(body[0].auto_model, head, pooling, normalize, labels).eval()
        # ---- save: the same end of run as fine-tuning (scores, calibration, baseline, card)
        state = {"global_step": history[-1]["step"] if history else 0, "epoch": cfg.setfit_epochs,
                 "train_seconds": seconds, "samples_seen": pairs * cfg.setfit_epochs, "best_step": None,
                 "best": None, "stopped_early": False, "precision": "no", "language_fit": fit.as_dict(),
                 "positive": None if cfg.multi_label or len(labels) != 2 else positive_class(labels, targets, cfg.positive_label)}  # fmt: skip
        result = finish(cfg, run_dir, clf, tokenizer, splits, labels, state, history, model_path)
        tracker.final(result, run_dir.work, state["global_step"])
        tracker.close()
    return result


def require_setfit():
    try:
        import datasets  # noqa: F401
        import setfit
    except ImportError:
        raise UserError(f"--method setfit needs the setfit library: {INSTALL}") from None
    return setfit


def load_body(setfit, model_path: str, cfg: TrainConfig) -> tuple:
    """The sentence encoder, its pooling mode and whether it normalises: a sentence-transformers directory
    as saved (MiniLM ships one: mean pooling, normalised), any other BERT directory with mean pooling added
    (sentence-transformers' own default). Pooling the saved model could not reproduce is refused here."""
    from sentence_transformers import SentenceTransformer

    try:
        body = SentenceTransformer(model_path, device="cpu" if not torch.cuda.is_available() else None)
    except (OSError, ValueError) as e:
        raise UserError(
            f"--model={model_path}: cannot load as a sentence encoder ({str(e).splitlines()[0]})"
        ) from None
    body.max_seq_length = cfg.max_length
    return (body, *pooling_of(body))


def pooling_of(body) -> tuple[str, bool]:
    """The encoder's pooling mode and whether it normalises (sentence-transformers 3-5 and 6 differ in
    where the modules live and how the mode is named)."""
    names = [type(m).__name__ for m in body]
    pool = next((m for m in body if type(m).__name__ == "Pooling"), None)
    mode = "mean"
    if pool is not None:
        mode = getattr(pool, "pooling_mode", None) or pool.get_pooling_mode_str()
        mode = mode if isinstance(mode, str) else "+".join(mode)
    if mode not in ("mean", "cls"):
        raise UserError(f"the sentence encoder pools by {mode!r}; --method setfit supports mean or cls")
    return mode, "Normalize" in names


def train_setfit(setfit, body, cfg: TrainConfig, texts: list[str], targets, n_labels: int, work) -> tuple:
    from datasets import Dataset
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    y = [list(map(int, t)) for t in targets] if cfg.multi_label else [int(t) for t in targets]
    if cfg.setfit_head == "end-to-end":
        from setfit.modeling import SetFitHead

        torch.manual_seed(cfg.seed)  # the head's initial weights, drawn before setfit's Trainer seeds
        dim = body[0].auto_model.config.hidden_size  # mean or [CLS] pooling: the encoder's width
        head = SetFitHead(in_features=dim, out_features=n_labels, multitarget=cfg.multi_label)
        model = setfit.SetFitModel(model_body=body, model_head=head)
    else:
        weight = "balanced" if cfg.class_weights == "balanced" else None
        head = LogisticRegression(max_iter=1000, class_weight=weight)
        if cfg.multi_label:
            model = setfit.SetFitModel(model_body=body, model_head=OneVsRestClassifier(head),
                                       multi_target_strategy="one-vs-rest")  # fmt: skip
        else:
            model = setfit.SetFitModel(model_body=body, model_head=head)
    args = setfit.TrainingArguments(
        output_dir=str(work / "setfit"),  # setfit's default is ./checkpoints in the working directory
        save_strategy="no",
        report_to="none",  # setfit's Trainer logs to MLflow whenever it is installed
        batch_size=cfg.setfit_batch_size,
        num_epochs=(cfg.setfit_epochs, cfg.setfit_head_epochs),  # the head's epochs: end-to-end only
        num_iterations=cfg.setfit_iterations,
        body_learning_rate=(cfg.setfit_learning_rate, cfg.setfit_head_body_learning_rate),
        head_learning_rate=cfg.setfit_head_learning_rate,
        end_to_end=cfg.setfit_head == "end-to-end",
        max_length=cfg.max_length,
        seed=cfg.seed,
        logging_steps=cfg.logging_steps,
    )
    trainer = setfit.Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"text": texts, "label": y}),
        callbacks=[progress_to_log()],
    )
    try:
        trainer.train()
    finally:
        shutil.rmtree(work / "setfit", ignore_errors=True)  # its (unused) checkpoint folder, ours to remove
    logs = trainer.st_trainer.state.log_history
    history = [
        {"type": "train", "step": h["step"], "loss": h["embedding_loss"]}
        for h in logs
        if "embedding_loss" in h
    ]
    steps = trainer.st_trainer.state.global_step
    if not history or history[-1]["step"] != steps:
        history.append(
            {"type": "train", "step": steps, "loss": history[-1]["loss"] if history else float("nan")}
        )
    pairs = steps * cfg.setfit_batch_size // max(1, cfg.setfit_epochs)
    log.info(
        "setfit: %d contrastive steps over about %d pairs per epoch; %s head fitted on %d texts%s",
        steps,
        pairs,
        cfg.setfit_head,
        len(texts),
        f" ({cfg.setfit_head_epochs} epochs)" if cfg.setfit_head == "end-to-end" else "",
    )
    return model, history, pairs


def progress_to_log():
    """setfit draws its progress bar on the terminal only; this writes the contrastive loss to train.log
    every --logging-steps, so a run of many minutes shows in its log how far it is."""
    from transformers import TrainerCallback

    class LogProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "embedding_loss" in logs:
                step, total = state.global_step, state.max_steps
                log.info("setfit step %d/%d: contrastive loss %.4f", step, total, logs["embedding_loss"])

    return LogProgress()


def finish(cfg, run_dir, clf, tokenizer, splits, labels, state, history, model_path) -> dict:
    from bertcls.core.longtext import encode_long
    from bertcls.core.report import FinishedRun, finish_run

    long_text = cfg.long_text_spec()
    enc_val = encode_long(tokenizer, splits.validation.texts, None, cfg.max_length, long_text)
    r = FinishedRun(cfg, run_dir, clf, tokenizer, splits, labels, state, history, model_path, enc_val)
    m, _ = r.score_validation(tune=cfg.multi_label)
    value = m.get(cfg.metric)
    state.update(best=value, best_step=state["global_step"])
    history.append(
        {"type": "eval", "step": state["global_step"], "epoch": float(cfg.setfit_epochs)} | scalar(m)
    )
    return finish_run(r)
