"""core.cls_only: the last layer computed at [CLS] only gives the plain model's logits and gradients."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from bertcls.core.cls_only import cls_only, supported


def _batch(vocab: int) -> dict:
    torch.manual_seed(1)
    ids = torch.randint(5, vocab, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padded rows: the [CLS] row of the attention mask must be used
    mask[3, 3:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _grads(model, batch, labels) -> dict:
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_cls_only_matches_the_plain_model(tiny_bert):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    assert supported(model)
    batch, labels = _batch(model.config.vocab_size), torch.tensor([0, 2, 1, 2])
    model.eval()
    with torch.no_grad():
        plain = model(**batch).logits
        with cls_only(model) as on:
            fast = model(**batch).logits
    assert on
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    # gradients (no dropout in eval mode, so both passes are deterministic)
    want = _grads(model, batch, labels)
    with cls_only(model):
        got = _grads(model, batch, labels)
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)
    # restored: the instance has no forward of its own again
    assert "forward" not in vars(model.bert.encoder.layer[-1])


def test_cls_only_leaves_other_models_alone():
    cfg = BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
    )
    model = BertForSequenceClassification(cfg)
    model.bert.pooler = None  # nothing reads position 0 alone
    with cls_only(model) as on:
        assert not on
    assert not supported(torch.nn.Linear(2, 2))
