"""BERT's masked-LM masks, drawn per epoch from (seed, stream, epoch, index): every epoch sees new masks,
and a resumed run sees exactly the masks the interrupted one would have."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bertcls.pretrain.instances import Instances


@dataclass(frozen=True)
class MaskSpec:
    mask_id: int
    special_ids: tuple[int, ...]
    vocab_size: int
    mlm_probability: float = 0.15
    mask_prob: float = 0.8  # of the selected tokens: this share -> [MASK]
    random_prob: float = 0.1  # this share -> a random token; the rest stay unchanged

    def random_ids(self) -> np.ndarray:
        ids = np.arange(self.vocab_size)
        return ids[~np.isin(ids, self.special_ids)]


def mask_tokens(
    ids: np.ndarray,
    word_starts: np.ndarray | None,
    spec: MaskSpec,
    rng: np.random.Generator,
    random_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """BERT masking of one sequence: returns (input ids, labels with -100 where nothing is predicted).

    ``round(mlm_probability * n)`` of the n non-special tokens are selected (at least one), whole words
    at a time when ``word_starts`` is given (a word that would overshoot the budget is skipped, as in
    Google's script); each selected token becomes [MASK] (80%), a random non-special token (10%) or stays.
    """
    ids = np.asarray(ids)
    cand = np.flatnonzero(~np.isin(ids, spec.special_ids))
    labels = np.full(len(ids), -100, dtype=np.int64)
    out = ids.astype(np.int64)
    if len(cand) == 0:
        return out, labels
    budget = max(1, int(round(len(cand) * spec.mlm_probability)))
    if word_starts is None:
        chosen = np.sort(rng.permutation(cand)[:budget])
    else:
        starts = np.asarray(word_starts)[cand].copy()
        starts[0] = True
        groups = np.split(cand, np.flatnonzero(starts)[1:])
        picked: list[np.ndarray] = []
        n = 0
        for g in rng.permutation(len(groups)):
            if n >= budget:
                break
            if n + len(groups[g]) > budget:
                continue
            picked.append(groups[g])
            n += len(groups[g])
        chosen = np.sort(np.concatenate(picked)) if picked else cand[:0]
    labels[chosen] = ids[chosen]
    r = rng.random(len(chosen))
    out[chosen[r < spec.mask_prob]] = spec.mask_id
    rand = chosen[(r >= spec.mask_prob) & (r < spec.mask_prob + spec.random_prob)]
    if len(rand):
        pool = random_ids if random_ids is not None else spec.random_ids()
        out[rand] = pool[rng.integers(0, len(pool), len(rand))]
    return out, labels


class MaskedPairs(torch.utils.data.Dataset):
    """Instances with masks drawn on access from (seed, stream, epoch, index): stream 0 trains, 1 evaluates
    (eval masks stay fixed, so evaluations are comparable); call :meth:`set_epoch` for fresh masks."""

    def __init__(self, instances: Instances, spec: MaskSpec, seed: int, whole_word: bool, stream: int = 0):
        self.instances = instances
        self.spec = spec
        self.seed = seed
        self.whole_word = whole_word and instances.word_starts is not None
        self.stream = stream
        self.epoch = 0
        self._random_ids = spec.random_ids()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, i: int) -> dict:
        inst = self.instances
        rng = np.random.default_rng([self.seed, self.stream, self.epoch, i])
        ws = inst.word_starts[i] if self.whole_word else None
        ids, labels = mask_tokens(inst.input_ids[i], ws, self.spec, rng, self._random_ids)
        tt = np.zeros(len(ids), dtype=np.int64)
        tt[int(inst.len_a[i]) + 2 :] = 1
        return {
            "input_ids": ids,
            "token_type_ids": tt,
            "labels": labels,
            "next_sentence_label": int(inst.next_sentence_label[i]),
        }


class PretrainCollator:
    """Pad to the batch's longest row: pad id for inputs, segment 0, attention 0, label -100."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        n, width = len(rows), max(len(r["input_ids"]) for r in rows)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        tt = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        labels = torch.full((n, width), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            k = len(r["input_ids"])
            ids[i, :k] = torch.from_numpy(r["input_ids"])
            tt[i, :k] = torch.from_numpy(r["token_type_ids"])
            labels[i, :k] = torch.from_numpy(r["labels"])
            mask[i, :k] = 1
        nsp = torch.tensor([r["next_sentence_label"] for r in rows], dtype=torch.long)
        return {
            "input_ids": ids,
            "token_type_ids": tt,
            "attention_mask": mask,
            "labels": labels,
            "next_sentence_label": nsp,
        }
