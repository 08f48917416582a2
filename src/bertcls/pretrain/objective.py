"""The pretraining objective (MLM + NSP losses), its held-out evaluation and the loss meter of the logs."""

from __future__ import annotations

import math
import time

import torch


class PretrainingObjective(torch.nn.Module):
    """MLM + NSP losses of a ``BertForPreTraining``, with the MLM head applied to masked positions only.

    The vocabulary projection is the largest matrix product of a small BERT; running it on the ~15%
    masked tokens instead of every position (as HF's forward does) is what Google's TF code does too.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids, attention_mask, labels, next_sentence_label):
        out = self.model.bert(
            input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask
        )
        seq, pooled = out[0], out[1]
        sel = labels != -100
        mlm_logits = self.model.cls.predictions(seq[sel]).float()
        nsp_logits = self.model.cls.seq_relationship(pooled).float()
        targets = labels[sel]
        # sum / count rather than the mean: a batch without a masked token gives 0, not the NaN of an empty
        # mean, which would poison every weight through the backward pass
        n_masked = sel.sum()
        mlm_loss = torch.nn.functional.cross_entropy(mlm_logits, targets, reduction="sum") / n_masked.clamp(
            min=1
        )
        nsp_loss = torch.nn.functional.cross_entropy(nsp_logits, next_sentence_label)
        return {
            "mlm_loss": mlm_loss,
            "nsp_loss": nsp_loss,
            "mlm_correct": (mlm_logits.argmax(-1) == targets).sum().detach(),
            "mlm_n": n_masked.detach(),
            "nsp_correct": (nsp_logits.argmax(-1) == next_sentence_label).sum().detach(),
            "nsp_n": torch.tensor(len(next_sentence_label)),
        }


@torch.no_grad()
def evaluate(objective, loader, device) -> dict:
    """MLM/NSP loss, accuracy and MLM perplexity over a loader (fixed masks: comparable across steps)."""
    was = objective.training
    objective.eval()
    meter = LossMeter()
    for batch in loader:
        meter.add(objective(**{k: v.to(device) for k, v in batch.items()}), 0)
    objective.train(was)
    return meter.scores() | {"n": meter.sums["nsp_n"]}


class LossMeter:
    """Sums since the last reset: losses weighted by their counts, hits, tokens, time."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.batches = 0
        self.sums = {
            "mlm_loss": 0.0,
            "nsp_loss": 0.0,
            "mlm_correct": 0,
            "mlm_n": 0,
            "nsp_correct": 0,
            "nsp_n": 0,
        }
        self.tokens = 0
        self.t0 = time.perf_counter()

    def add(self, r: dict, tokens: int) -> float:
        """Adds one batch; returns its MLM + NSP loss (for the caller's finiteness check)."""
        n_m, n_n = int(r["mlm_n"]), int(r["nsp_n"])
        mlm, nsp = r["mlm_loss"].item(), r["nsp_loss"].item()
        self.sums["mlm_loss"] += mlm * n_m
        self.sums["nsp_loss"] += nsp * n_n
        for k in ("mlm_correct", "mlm_n", "nsp_correct", "nsp_n"):
            self.sums[k] += int(r[k])
        self.tokens += tokens
        self.batches += 1
        return mlm + nsp

    def scores(self) -> dict:
        s = self.sums
        m, n = max(1, s["mlm_n"]), max(1, s["nsp_n"])
        return {
            "mlm_loss": s["mlm_loss"] / m,
            "mlm_accuracy": s["mlm_correct"] / m,
            "mlm_perplexity": math.exp(min(50.0, s["mlm_loss"] / m)),
            "nsp_loss": s["nsp_loss"] / n,
            "nsp_accuracy": s["nsp_correct"] / n,
        }

    def record(self, step: int, lr: float, elapsed: float) -> dict:
        """A training log record (tokens/s counts non-pad tokens); resets the sums."""
        dt = max(1e-9, time.perf_counter() - self.t0)
        sc = self.scores()
        rec = (
            {"type": "train", "step": step}
            | sc
            | {
                "loss": sc["mlm_loss"] + sc["nsp_loss"],
                "lr": lr,
                "tokens_per_s": self.tokens / dt,
                "sequences_per_s": self.sums["nsp_n"] / dt,
                "elapsed_s": round(elapsed, 1),
                "_tokens": self.tokens,
            }
        )
        self.reset()
        return rec
