from __future__ import annotations

import numpy as np
import torch

from bertcls.core.batching import Collator, LengthGroupedBatchSampler, encode


def test_sampler_covers_every_index_once_and_is_a_function_of_epoch():
    lengths = np.random.default_rng(0).integers(2, 100, size=1000)
    s = LengthGroupedBatchSampler(lengths, 16, seed=1)
    s.set_epoch(0)
    a = s.batches()
    assert sorted(i for b in a for i in b) == list(range(1000))
    assert s.batches() == a  # same epoch, same order (exact resume depends on this)
    s.set_epoch(1)
    assert s.batches() != a
    assert len(a) == len(s) == 63


def test_grouping_reduces_padding():
    lengths = np.random.default_rng(0).integers(2, 100, size=2000)

    def padded(group):
        s = LengthGroupedBatchSampler(lengths, 32, seed=0, group_by_length=group)
        return sum(len(b) * lengths[b].max() for b in s.batches())

    assert padded(True) < 0.7 * padded(False)


def test_collator_pads_to_batch_max_and_masks(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    enc = encode(tok, ["good film", "a really really very good film"], ["bad", "nice"], max_length=32)
    assert enc[0]["token_type_ids"][-2:] == [1, 1]  # segment B = the pair text + its [SEP]
    batch = Collator(tok.pad_token_id)(enc)
    assert batch["input_ids"].shape == (2, max(len(e["input_ids"]) for e in enc))
    assert batch["attention_mask"][0].sum() == len(enc[0]["input_ids"])
    assert torch.all(batch["input_ids"][0][batch["attention_mask"][0] == 0] == tok.pad_token_id)


def test_sharded_logits_gathers_each_ranks_share_back_in_input_order(tiny_bert, monkeypatch):
    """Validation in a distributed run: rank r scores encodings r, r+N, ...; the gathered logits must be
    the single-process logits row for row (simulated 3-rank world: the other ranks' shares computed here)."""
    import torch.distributed as dist
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertcls.core.batching import batched_logits, sharded_logits

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    texts = [("word " * (1 + (i * 7) % 11)).strip() for i in range(10)]
    enc = [dict(tok(t)) for t in texts]
    world, rank = 3, 1
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: world)
    monkeypatch.setattr(dist, "get_rank", lambda: rank)
    shares = []

    def all_gather_object(parts, mine):
        shares.append(len(mine))
        for r in range(world):
            parts[r] = mine if r == rank else batched_logits(model, enc[r::world], 4, tok.pad_token_id)

    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    got = sharded_logits(model, enc, 4, tok.pad_token_id)
    assert shares == [3]  # this rank scored its 3 of the 10 rows, not all of them
    np.testing.assert_allclose(got, batched_logits(model, enc, 4, tok.pad_token_id), atol=1e-5)
