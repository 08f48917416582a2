"""Skip the last encoder layer's work that a [CLS] classifier throws away.

`BertForSequenceClassification` reads one vector per text: the pooler takes the last layer's output at
position 0. Every other position of that layer is computed and discarded, forward and backward: its
queries, attention output projection, feed-forward block and LayerNorms, 10 of the layer's 12 H x H
matrix products per token (keys and values are still needed at every position, as [CLS] attends to
them). For a 6-layer model that is about 14% of the encoder's FLOPs. Neither transformers nor the HF
Trainer does this, so it is done here, by giving the last layer's instance a forward that computes only
position 0 from the same modules and weights. Logits are those of the plain model up to float rounding
(tests/test_cls_only.py checks logits and gradients against it); nothing is saved differently.

Only plain BERT classifiers with the pooler, encoder-only, and SDPA or eager attention are changed;
anything else runs unchanged.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any


def supported(model: Any) -> bool:
    cfg = getattr(model, "config", None)
    bert = getattr(model, "bert", None)
    return (
        cfg is not None
        and type(model).__name__ == "BertForSequenceClassification"
        and bert is not None
        and getattr(bert, "pooler", None) is not None
        and not cfg.is_decoder
        and not cfg.add_cross_attention
        and getattr(cfg, "_attn_implementation", None) in ("sdpa", "eager")
        and len(bert.encoder.layer) > 0
    )


@contextlib.contextmanager
def cls_only(model: Any, enabled: bool = True) -> Iterator[bool]:
    """Within the block, ``model``'s last layer computes position 0 only. Yields whether it does."""
    if not enabled or not supported(model):
        yield False
        return
    layer = model.bert.encoder.layer[-1]
    layer.forward = types.MethodType(_first_position_forward, layer)
    try:
        yield True
    finally:
        del layer.forward  # the class's forward again


def _first_position_forward(self, hidden_states, attention_mask=None, *args, **kwargs):
    """`BertLayer.forward` for the [CLS] position alone: (batch, 1, hidden) out."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    att = self.attention.self
    batch = hidden_states.shape[0]
    heads = (batch, -1, att.num_attention_heads, att.attention_head_size)
    first = hidden_states[:, :1]
    query = att.query(first).view(heads).transpose(1, 2)
    key = att.key(hidden_states).view(heads).transpose(1, 2)
    value = att.value(hidden_states).view(heads).transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 4:
        attention_mask = attention_mask[:, :, :1, :]  # the [CLS] query's row
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(att.config._attn_implementation, eager_attention_forward)
    context, _ = attend(
        att,
        query,
        key,
        value,
        attention_mask,
        dropout=0.0 if not att.training else att.dropout.p,
        scaling=att.scaling,
    )
    context = context.reshape(batch, 1, -1).contiguous()
    attention_output = self.attention.output(context, first)
    return self.output(self.intermediate(attention_output), attention_output)
