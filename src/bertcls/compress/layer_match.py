"""TinyBERT's intermediate-layer distillation (Jiao et al. 2020): besides the teacher's soft targets, the
student's hidden states and attention scores are pulled towards those of the teacher layer each student
layer stands for (`bertcls distill --hidden-weight W --attention-weight W`).

Written here because neither transformers nor any library we depend on has it (TextBrewer has, but pins
old torch and transformers). The mapping: a student made of teacher layers (``--student-layers 0,2,4``)
matches the layers it was copied from; any other student maps its layer j of M to teacher layer
(j + 1) * N / M - 1 (TinyBERT's uniform strategy); the embeddings match the embeddings. Hidden states
match by MSE over real tokens, so they need equal hidden sizes; attention by MSE of the pre-softmax scores
over real (query, key) pairs, so it needs equal head counts. A learned projection for unequal sizes
(TinyBERT's W_h) is not built: "where shapes allow", and the students here mostly keep the teacher's width.

Attention scores are not an output of transformers' models (``output_attentions`` gives probabilities
after dropout, and only with eager attention), so forward hooks record each layer's query and key
projections and the scores are recomputed from them; this works with the default SDPA attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bertcls.core.errors import UserError


def uniform_map(n_student: int, n_teacher: int) -> list[int]:
    """TinyBERT's uniform layer mapping: student layer j of M <- teacher layer (j + 1) * N / M - 1."""
    return [max(0, round((j + 1) * n_teacher / n_student) - 1) for j in range(n_student)]


def self_attentions(model) -> list:
    """Each encoder layer's self-attention module (BERT's layout), or a one-line error naming the model."""
    encoder = getattr(getattr(model, "base_model", model), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None or not all(hasattr(x, "attention") and hasattr(x.attention, "self") for x in layers):
        raise UserError(
            f"--attention-weight: {type(model).__name__} does not have BERT's layer layout; "
            f"use --attention-weight 0"
        )
    return [x.attention.self for x in layers]


def check_shapes(teacher_config, student_config, hidden_weight: float, attention_weight: float) -> None:
    """Refuse, in one line, matching that the two models' shapes do not allow."""
    t, s = teacher_config, student_config
    if hidden_weight > 0 and s.hidden_size != t.hidden_size:
        raise UserError(
            f"--hidden-weight={hidden_weight}: the student's hidden size ({s.hidden_size}) differs from the "
            f"teacher's ({t.hidden_size}); use a student of the teacher's width (--student-layers) or --hidden-weight 0"
        )
    if attention_weight > 0 and s.num_attention_heads != t.num_attention_heads:
        raise UserError(
            f"--attention-weight={attention_weight}: the student has {s.num_attention_heads} attention heads, "
            f"the teacher {t.num_attention_heads}; use a student with as many heads or --attention-weight 0"
        )


class _QKRecorder:
    """Forward hooks that keep each layer's query and key projections of the last training forward."""

    def __init__(self, attentions: list, only_training: bool):
        self.q: list = [None] * len(attentions)
        self.k: list = [None] * len(attentions)
        self.heads = [a.num_attention_heads for a in attentions]
        for i, a in enumerate(attentions):
            a.query.register_forward_hook(self._hook(self.q, i, only_training))
            a.key.register_forward_hook(self._hook(self.k, i, only_training))

    @staticmethod
    def _hook(store: list, i: int, only_training: bool):
        def keep(module, inputs, output):
            # evaluation passes of the student (validation, test) are not matched: do not hold on to them
            if module.training or not only_training:
                store[i] = output

        return keep

    def scores(self, i: int) -> torch.Tensor:
        """Layer i's pre-softmax attention scores, (batch, heads, query, key), in fp32."""
        q, k = self.q[i].float(), self.k[i].float()
        b, n, _ = q.shape
        q = q.view(b, n, self.heads[i], -1).transpose(1, 2)
        k = k.view(b, n, self.heads[i], -1).transpose(1, 2)
        return q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5

    def clear(self) -> None:
        self.q[:] = [None] * len(self.q)
        self.k[:] = [None] * len(self.k)


class LayerMatch:
    """The intermediate-layer loss for one student and teacher: ``loss(student_outputs, batch)``."""

    def __init__(self, teacher, student, layer_map: list[int], hidden_weight: float, attention_weight: float):
        # the teacher runs beside the student on every batch: on the student's device, moved once here
        self.teacher, self.map = teacher.to(next(student.parameters()).device), layer_map
        self.hw, self.aw = hidden_weight, attention_weight
        self.student_qk = self.teacher_qk = None
        if attention_weight > 0:
            self.student_qk = _QKRecorder(self_attentions(student), only_training=True)
            self.teacher_qk = _QKRecorder(self_attentions(teacher), only_training=False)

    @property
    def forward_kwargs(self) -> dict:
        """What the student's forward must return for the loss."""
        return {"output_hidden_states": True} if self.hw > 0 else {}

    def loss(self, student_out, batch: dict) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            teacher_out = self.teacher(**inputs, **self.forward_kwargs)
        mask = inputs["attention_mask"].float()
        total = student_out.logits.new_zeros((), dtype=torch.float32)
        if self.hw > 0:
            pairs = [(0, 0)] + [(j + 1, t + 1) for j, t in enumerate(self.map)]  # 0: the embeddings
            hs, ht = student_out.hidden_states, teacher_out.hidden_states
            per_layer = [_masked_mse(hs[s], ht[t], mask[..., None]) for s, t in pairs]
            total = total + self.hw * sum(per_layer) / len(per_layer)
        if self.aw > 0:
            pair_mask = (mask[:, :, None] * mask[:, None, :])[:, None]  # real (query, key) pairs
            per_layer = [
                _masked_mse(self.student_qk.scores(j), self.teacher_qk.scores(t), pair_mask)
                for j, t in enumerate(self.map)
            ]
            total = total + self.aw * sum(per_layer) / len(per_layer)
            self.student_qk.clear()
            self.teacher_qk.clear()
        return total


def _masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over the cells ``mask`` (broadcast to ``a``) keeps."""
    mask = mask.expand_as(a)
    return (F.mse_loss(a.float(), b.float(), reduction="none") * mask).sum() / mask.sum().clamp_min(1)
