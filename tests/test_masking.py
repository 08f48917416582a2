"""Pretraining data: sentence splitting, segment-pair instances, NSP balance and BERT masking statistics."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bertcls.pretrain import instances, masking

CLS, SEP, MASK = 2, 3, 4
SPECIAL = (0, 1, 2, 3, 4)
SPEC = masking.MaskSpec(mask_id=MASK, special_ids=SPECIAL, vocab_size=1000)


def synthetic_docs(
    n_docs: int, seed: int = 0, word_starts: bool = False, max_sents: int = 12
) -> list[list[instances.Sentence]]:
    """Documents of random sentences of random ids (>= 5, so never special); words of 1-3 tokens."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        doc = []
        for _ in range(int(rng.integers(1, max_sents))):
            n = int(rng.integers(1, 40))
            ids = rng.integers(5, 1000, n).astype(np.int32)
            starts = rng.random(n) < 0.6 if word_starts else None
            if starts is not None:
                starts[0] = True
            doc.append((ids, starts))
        docs.append(doc)
    return docs


def make_instances(
    n_docs: int = 300, max_len: int = 64, seed: int = 0, word_starts: bool = False
) -> instances.Instances:
    return instances.create_instances(synthetic_docs(n_docs, seed, word_starts), max_len, 0.1, seed, CLS, SEP)


# ---------------------------------------------------------------------------------------------------- sentences
def test_split_sentences_english_and_chinese():
    en = 'It was 3.5 m long. The crew, e.g. this one, left! Did they? yes they did. "Quoted." Next one'
    assert instances.split_sentences(en) == [
        "It was 3.5 m long.",
        "The crew, e.g. this one, left!",
        "Did they? yes they did.",
        '"Quoted."',
        "Next one",
    ]
    zh = "他说：“走吧。”我们走了！真的吗？是的；好……然后呢"
    assert instances.split_sentences(zh) == [
        "他说：“走吧。”",
        "我们走了！",
        "真的吗？",
        "是的；",
        "好……",
        "然后呢",
    ]
    assert instances.split_sentences("服务很好!!下次还来") == ["服务很好!!", "下次还来"]
    assert instances.split_sentences("   ") == []


# ---------------------------------------------------------------------------------------------------- instances
@pytest.mark.parametrize("max_len", [16, 40, 128])
def test_instances_never_exceed_max_length_and_have_bert_layout(max_len):
    inst = make_instances(200, max_len, seed=max_len)
    assert len(inst) > 100
    for ids, la in zip(inst.input_ids, inst.len_a):
        assert len(ids) <= max_len
        assert ids[0] == CLS and ids[la + 1] == SEP and ids[-1] == SEP
        assert la >= 1 and len(ids) - la - 3 >= 1  # both segments non-empty
        assert not np.isin(ids[1 : la + 1], SPECIAL).any() and not np.isin(ids[la + 2 : -1], SPECIAL).any()


def test_short_sequences_are_drawn_sometimes():
    docs = synthetic_docs(100, max_sents=60)  # long documents: chunks fill up to the target length
    lengths = np.asarray(instances.create_instances(docs, 128, 0.1, 0, CLS, SEP).lengths())
    assert (lengths == 128).mean() > 0.6  # most instances are packed full
    assert (lengths < 64).mean() > 0.03  # short_seq_prob=0.1 gives some short targets


def test_nsp_is_balanced():
    labels = make_instances(1500).next_sentence_label
    assert len(labels) > 2000
    assert abs(labels.mean() - 0.5) < 0.03


def test_actual_next_segments_are_consecutive_text():
    # One document of increasing ids: a true "B" continues "A" (it may be truncated from the front).
    doc = [(np.arange(5 + 10 * i, 15 + 10 * i, dtype=np.int32), None) for i in range(30)]
    other = [(np.full(10, 999, dtype=np.int32), None) for _ in range(30)]
    inst = instances.create_instances([doc, other], 40, 0.0, 1, CLS, SEP)
    checked = 0
    for ids, la, lab in zip(inst.input_ids, inst.len_a, inst.next_sentence_label):
        a, b = ids[1 : la + 1], ids[la + 2 : -1]
        if a[0] == 999:
            continue
        if lab == 0:
            assert b[0] > a[-1] and 999 not in b
            checked += 1
        else:
            assert 999 in b  # random B came from the other document
    assert checked > 3


def test_instances_are_seeded():
    a, b = make_instances(100, seed=3), make_instances(100, seed=3)
    assert a.fingerprint() == b.fingerprint()
    assert make_instances(100, seed=4).fingerprint() != a.fingerprint()


def test_dupe_factor_recuts_with_new_nsp_partners_and_keeps_held_out_text_unseen():
    docs = synthetic_docs(300, seed=5)
    one_train, one_held = instances.build_instances(docs, 64, 0.1, 7, CLS, SEP, eval_instances=30)
    train, held = instances.build_instances(docs, 64, 0.1, 7, CLS, SEP, eval_instances=30, dupe_factor=4)
    # One copy is exactly the plain instances split as before; the first of four copies is the same.
    plain = instances.create_instances(docs, 64, 0.1, 7, CLS, SEP)
    tr_idx, ev_idx = instances.split_eval(len(plain), 30, 7)
    assert one_train.fingerprint() == plain.subset(tr_idx).fingerprint()
    assert held.fingerprint() == one_held.fingerprint() == plain.subset(ev_idx).fingerprint()
    assert 2.5 * len(one_train) < len(train) < 4 * len(one_train)
    assert abs(train.next_sentence_label.mean() - 0.5) < 0.03
    extra = train.subset(range(len(one_train), len(train)))
    assert not np.isin(extra.docs, held.docs).any()  # no held-out document's text in the added copies
    pairs = lambda inst: {tuple(d) for d, lab in zip(inst.docs, inst.next_sentence_label) if lab == 1}  # noqa: E731
    assert len(pairs(extra) - pairs(one_train)) > 0.9 * len(pairs(extra))  # fresh NSP partners
    for ids, la in zip(extra.input_ids, extra.len_a):
        assert len(ids) <= 64 and ids[0] == CLS and ids[la + 1] == SEP and ids[-1] == SEP


# ---------------------------------------------------------------------------------------------------- masking
def test_masking_rates_80_10_10_and_specials_untouched():
    inst = make_instances(800, 128)
    ds = masking.MaskedPairs(inst, SPEC, seed=0, whole_word=False)
    maskable = selected = masked = randomised = kept = 0
    for i in range(len(ds)):
        x = ds[i]
        ids = inst.input_ids[i]
        special = np.isin(ids, SPECIAL)
        sel = x["labels"] != -100
        assert not (sel & special).any(), "a special token was selected"
        assert (x["input_ids"][special] == ids[special]).all(), "a special token was changed"
        assert (x["labels"][sel] == ids[sel]).all()  # labels are the original tokens
        assert (x["input_ids"][~sel] == ids[~sel]).all()  # nothing else changes
        maskable += int((~special).sum())
        selected += int(sel.sum())
        out = x["input_ids"][sel]
        masked += int((out == MASK).sum())
        changed = (out != MASK) & (out != ids[sel])
        randomised += int(changed.sum())
        kept += int((out == ids[sel]).sum())
        assert not np.isin(out[changed], SPECIAL).any(), "random replacement drew a special token"
    assert maskable > 50_000
    assert abs(selected / maskable - 0.15) < 0.005
    assert abs(masked / selected - 0.8) < 0.01
    # A random draw equals the original token with probability ~1/995: counted as kept.
    assert abs(randomised / selected - 0.1) < 0.01
    assert abs(kept / selected - 0.1) < 0.01


def test_every_sequence_gets_at_least_one_prediction():
    ids = np.array([CLS, 7, SEP, 8, SEP], dtype=np.int32)
    for s in range(20):
        _, labels = masking.mask_tokens(ids, None, SPEC, np.random.default_rng(s))
        assert (labels != -100).sum() == 1


def test_masks_differ_between_epochs_and_repeat_within_an_epoch():
    inst = make_instances(50)
    ds = masking.MaskedPairs(inst, SPEC, seed=5, whole_word=False)
    ds.set_epoch(0)
    e0 = [ds[i]["labels"] for i in range(len(ds))]
    again = masking.MaskedPairs(inst, SPEC, seed=5, whole_word=False)  # a resumed run builds a new dataset
    again.set_epoch(0)
    assert all((a == again[i]["labels"]).all() for i, a in enumerate(e0))
    ds.set_epoch(1)
    e1 = [ds[i]["labels"] for i in range(len(ds))]
    differ = sum(not np.array_equal(a, b) for a, b in zip(e0, e1))
    assert differ > 0.9 * len(e0)
    # The evaluation stream is fixed and distinct from training's.
    ev = masking.MaskedPairs(inst, SPEC, seed=5, whole_word=False, stream=1)
    assert sum(not np.array_equal(ev[i]["labels"], e0[i]) for i in range(len(ds))) > 0.9 * len(e0)


def _words(flags: np.ndarray) -> list[np.ndarray]:
    starts = np.flatnonzero(flags)
    return [np.arange(s, e) for s, e in zip(starts, list(starts[1:]) + [len(flags)])]


def test_whole_word_masking_selects_whole_units():
    inst = make_instances(300, 64, word_starts=True)
    ds = masking.MaskedPairs(inst, SPEC, seed=1, whole_word=True)
    total = sel_total = 0
    for i in range(len(ds)):
        x = ds[i]
        ids, flags = inst.input_ids[i], inst.word_starts[i].copy()
        special = np.isin(ids, SPECIAL)
        flags[special] = True  # specials are their own units here
        sel = x["labels"] != -100
        for w in _words(flags):
            assert sel[w].all() or not sel[w].any(), f"instance {i}: word {w} partly selected"
        total += int((~special).sum())
        sel_total += int(sel.sum())
    assert 0.13 < sel_total / total <= 0.15 + 1e-9  # whole words can fall a little short of the budget


# ---------------------------------------------------------------------------------------------------- real tokenizers
@pytest.fixture(scope="module")
def en_tokenizer(tmp_path_factory):
    from helpers import make_vocab
    from transformers import BertTokenizerFast

    d = tmp_path_factory.mktemp("vocab")
    words = ["the", "play", "walk", "talk", "is", "good", "dog", "cat", "he", "she", "."]
    tokens = make_vocab(d, words).read_text().split() + ["##ing", "##ed"]
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)


def test_whole_word_masking_english_groups_wordpieces(en_tokenizer):
    docs = [["He is playing. She walked the dog. The cat is talking."] * 3 for _ in range(40)]
    tok_docs = instances.tokenize_documents(en_tokenizer, docs, whole_word=True)
    inst = instances.create_instances(
        tok_docs, 32, 0.1, 0, en_tokenizer.cls_token_id, en_tokenizer.sep_token_id
    )
    spec = masking.MaskSpec(
        en_tokenizer.mask_token_id,
        tuple(en_tokenizer.all_special_ids),
        len(en_tokenizer),
        mlm_probability=0.4,
    )
    ds = masking.MaskedPairs(inst, spec, seed=0, whole_word=True)
    cont = instances.continuation_mask(en_tokenizer)
    pieces_seen = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            ids = inst.input_ids[i]
            sel = ds[i]["labels"] != -100
            for j in np.flatnonzero(cont[ids]):
                if ids[j - 1] in spec.special_ids:  # a segment cut inside a word starts a new unit
                    continue
                # a '##' piece is selected exactly when the piece before it (its word) is
                if sel[j - 1] or sel[j]:
                    pieces_seen += 1
                    assert sel[j] == sel[j - 1], en_tokenizer.convert_ids_to_tokens(ids.tolist())
    assert pieces_seen > 20


def test_whole_word_masking_chinese_uses_jieba_words(tmp_path):
    jieba = pytest.importorskip("jieba")
    from bertcls.pretrain.tokenizer import build_tokenizer, wrap

    text = "我们在北京大学学习自然语言处理。今天天气很好，我们去公园散步。"
    tok = wrap(build_tokenizer([text] * 5, 200, True, 1), True)
    assert tok.tokenize("北京大学") == ["北", "京", "大", "学"]  # one character per token
    docs = [[text, text] for _ in range(60)]
    tok_docs = instances.tokenize_documents(tok, docs, whole_word=True)
    ids, starts = tok_docs[0][0]
    words = jieba.lcut("我们在北京大学学习自然语言处理。")
    assert "北京大学" in words
    expected = np.concatenate([[True] + [False] * (len(w) - 1) for w in words])
    assert (starts == expected).all()
    inst = instances.create_instances(tok_docs, 48, 0.0, 0, tok.cls_token_id, tok.sep_token_id)
    spec = masking.MaskSpec(tok.mask_token_id, tuple(tok.all_special_ids), len(tok), mlm_probability=0.3)
    ds = masking.MaskedPairs(inst, spec, seed=0, whole_word=True)
    bj = tok.convert_tokens_to_ids(["北", "京", "大", "学"])
    hits = 0
    for i in range(len(ds)):
        seq = inst.input_ids[i].tolist()
        sel = ds[i]["labels"] != -100
        for k in range(len(seq) - 3):
            if seq[k : k + 4] == bj and sel[k : k + 4].any():
                hits += 1
                assert sel[k : k + 4].all(), "北京大学 partly masked"
    assert hits > 5


def test_random_ids_exclude_specials():
    pool = SPEC.random_ids()
    assert len(pool) == 995 and not np.isin(pool, SPECIAL).any()


def test_truncate_pair_keeps_total_and_both_sides():
    rng = random.Random(0)
    for la, lb in [(100, 3), (3, 100), (60, 60), (5, 5)]:
        (a0, a1), (b0, b1) = instances._truncate_pair(la, lb, 50, rng)
        assert (a1 - a0) + (b1 - b0) == min(50, la + lb)
        assert a1 - a0 >= 1 and b1 - b0 >= 1
