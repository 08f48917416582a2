"""Tokenisation once, dynamic padding, and length-grouped batches.

Padding every batch to a global max length wastes most of the compute on short texts: SST-2 sentences
average ~25 tokens against a 128 cap. We pad each batch to its own longest row and, for training, draw
batches from length-sorted "megabatches" (as HF's LengthGroupedSampler does) so rows in a batch have
similar lengths while the order stays random. Inference sorts the whole input by length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


def encode(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int) -> list[dict]:
    """Tokenise to python lists (no padding); BERT segment ids mark text (A) and pair (B)."""
    enc = tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_token_type_ids=True,
        return_attention_mask=False,
    )
    return [
        {"input_ids": ids, "token_type_ids": tt} for ids, tt in zip(enc["input_ids"], enc["token_type_ids"])
    ]


class Collator:
    """Pad a list of encodings to the batch's longest row; attach labels when present."""

    def __init__(self, pad_id: int, multi_label: bool = False, pad_to_multiple_of: int | None = None):
        self.pad_id = pad_id
        self.multi_label = multi_label
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        n = len(rows)
        width = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            width = (width + m - 1) // m * m
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        tt = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, r in enumerate(rows):
            k = len(r["input_ids"])
            ids[i, :k] = torch.tensor(r["input_ids"])
            tt[i, :k] = torch.tensor(r["token_type_ids"])
            mask[i, :k] = 1
        batch = {"input_ids": ids, "token_type_ids": tt, "attention_mask": mask}
        if "labels" in rows[0]:
            dtype = torch.float32 if self.multi_label else torch.long
            batch["labels"] = torch.tensor(np.array([r["labels"] for r in rows]), dtype=dtype)
        if "teacher" in rows[0]:  # distillation: the teacher's logits, and which rows have a true label
            batch["teacher"] = torch.tensor(np.stack([r["teacher"] for r in rows]), dtype=torch.float32)
            batch["labeled"] = torch.tensor([bool(r["labeled"]) for r in rows])
        return batch


class LengthGroupedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Random batches of similar-length rows; the order is a pure function of (seed, epoch)
    so a resumed run sees exactly the batches the interrupted one would have."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
        megabatch_mult: int = 50,
        drop_last: bool = False,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group = group_by_length
        self.mega = batch_size * megabatch_mult
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        perm = rng.permutation(len(self.lengths))
        if self.group:
            chunks = [perm[i : i + self.mega] for i in range(0, len(perm), self.mega)]
            perm = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        out = [perm[i : i + self.batch_size].tolist() for i in range(0, len(perm), self.batch_size)]
        if self.drop_last and out and len(out[-1]) < self.batch_size:
            out.pop()
        if self.group:
            order = rng.permutation(len(out))
            out = [out[i] for i in order]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Inference batches of ``batch_size`` texts, longest first, in index space (caller restores input
    order)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def batched_logits(
    model, encodings: list[dict], batch_size: int, pad_id: int, device: torch.device | str | None = None
) -> np.ndarray:
    """Logits for every encoding, computed in length-sorted batches, returned in input order."""
    if not encodings:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    collate = Collator(pad_id)
    out = np.zeros((len(encodings), model.config.num_labels), dtype=np.float32)
    for idx in sorted_batches([len(e["input_ids"]) for e in encodings], batch_size=batch_size):
        batch = collate([encodings[i] for i in idx])
        # Inputs only: with the labels the model would also compute a loss nobody reads, and a loss of
        # the wrong kind when the model's problem_type does not match the rows (multi-label teachers in
        # distill crashed here on float targets).
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        logits = model(**batch).logits
        out[idx] = logits.float().cpu().numpy()
    model.train(was_training)
    return out


def sharded_logits(model, encodings: list[dict], batch_size: int, pad_id: int) -> np.ndarray:
    """:func:`batched_logits` split across the ranks of a torch.distributed run: each rank scores every
    world-th encoding and the pieces are gathered back in input order, so N processes score validation in
    about 1/N of the time instead of each scoring all of it. One process: ``batched_logits`` itself.
    Every rank must call it (a collective); it returns the full logits on every rank, so decisions made
    from them (best checkpoint, early stopping, pruning) agree across ranks."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return batched_logits(model, encodings, batch_size, pad_id)
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = batched_logits(model, encodings[rank::world], batch_size, pad_id)
    parts: list = [None] * world
    dist.all_gather_object(parts, mine)  # small: rows x labels floats; any backend (gloo on CPU, NCCL)
    out = np.zeros((len(encodings), model.config.num_labels), dtype=np.float32)
    for r, part in enumerate(parts):
        out[r::world] = part
    return out
