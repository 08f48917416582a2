"""How faithful are `bertcls explain`'s attributions? ERASER-style (DeYoung et al. 2020), issue 13.

For each text, the words are ranked by each method's score towards the predicted label; then
- comprehensiveness(k) = p(label | text) - p(label | text without its top k% words): high = the words
  the method picked were the ones the model needed;
- sufficiency(k) = p(label | text) - p(label | only its top k% words): low = they are enough on their own.
Methods: Integrated Gradients and occlusion (bertcls), plain attention (last layer, [CLS] row, mean over
heads), and random scores (the floor). Words are removed by deleting their word pieces, as occlusion
does. The median seconds per text of each method are measured in the same run (``--threads``).

    python bench/explain_faithfulness.py --model runs/sst2-minilm --data ../shared/data/sst2/test.csv --n 500

Writes bench/results/explain_faithfulness_<model dir name>.json and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
METHODS = ("ig", "occlusion", "attention", "random")


def attention_scores(clf, row: dict, words) -> np.ndarray:
    """Last layer's attention from [CLS], averaged over heads, summed over each word's pieces."""
    import torch

    with torch.no_grad():
        out = clf.model(
            input_ids=torch.tensor([row["input_ids"]]),
            token_type_ids=torch.tensor([row["token_type_ids"]]),
            output_attentions=True,
        )
    cls = out.attentions[-1][0].mean(0)[0].numpy()
    return np.array([cls[w.tokens].sum() for w in words])


def scores_for(clf, method: str, text: str, row: dict, words, rng: random.Random, zh_words: str, errors):
    t0 = time.perf_counter()
    if method in ("ig", "occlusion"):
        e = clf.explain(text, method=method, zh_words=zh_words)
        assert [w.start for w in e.words] == [w.start for w in words]
        s = np.array(e.targets[0].scores)
        if e.targets[0].completeness_error is not None:
            errors.append(e.targets[0].completeness_error)
    elif method == "attention":
        s = attention_scores(clf, row, words)
    else:
        s = np.array([rng.random() for _ in words])
    return s, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="CSV with a text column")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--ks", default="10,20,50")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--zh-words", default="chars", choices=["chars", "jieba"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    a = p.parse_args()

    import torch

    from bertcls import TextClassifier
    from bertcls.analysis.attribution import jieba_words, tokenize, without

    torch.set_num_threads(a.threads)
    clf = TextClassifier.from_pretrained(a.model, device="cpu", ensemble=False)
    clf.model.set_attn_implementation("eager")  # sdpa returns no attention weights
    with open(a.data, encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)][: a.n]
    ks = [int(k) for k in a.ks.split(",")]
    methods = a.methods.split(",")
    rng = random.Random(a.seed)
    comp = {m: {k: [] for k in ks} for m in methods}
    suff = {m: {k: [] for k in ks} for m in methods}
    seconds = {m: [] for m in methods}
    errors: list[float] = []  # IG completeness error per text
    for n, text in enumerate(texts, 1):
        row, words, _ = tokenize(clf, text, None)
        if a.zh_words == "jieba":
            words = jieba_words(words, text, None)
        specials = set(range(len(row["input_ids"]))) - {t for w in words for t in w.tokens}
        p_full = clf.probabilities(clf.row_logits([row]))[0]
        y = int(p_full.argmax())
        for m in methods:
            s, dt = scores_for(clf, m, text, row, words, rng, a.zh_words, errors)
            seconds[m].append(dt)
            order = np.argsort(-s, kind="stable")
            rows = []
            for k in ks:
                top = {t for i in order[: max(1, math.ceil(k / 100 * len(words)))] for t in words[i].tokens}
                rest = set(range(len(row["input_ids"]))) - specials - top
                rows += [without(row, top), without(row, rest)]  # without them; only them (and [CLS]/[SEP])
            probs = clf.probabilities(clf.row_logits(rows))[:, y]
            for j, k in enumerate(ks):
                comp[m][k].append(float(p_full[y] - probs[2 * j]))
                suff[m][k].append(float(p_full[y] - probs[2 * j + 1]))
        if n % 50 == 0:
            print(f"{n}/{len(texts)} texts", file=sys.stderr, flush=True)

    table = {
        m: {
            "comprehensiveness": {k: float(np.mean(comp[m][k])) for k in ks},
            "sufficiency": {k: float(np.mean(suff[m][k])) for k in ks},
            "median_seconds": float(np.median(seconds[m])),
        }
        for m in methods
    }
    result = {
        "model": a.model,
        "data": a.data,
        "texts": len(texts),
        "threads": a.threads,
        "command": " ".join(sys.argv),
        "methods": table,
        "ig_completeness_error": {
            "median": float(np.median(errors)),
            "p95": float(np.percentile(errors, 95)),
            "max": float(np.max(errors)),
        }
        if errors
        else None,
    }
    out = Path(a.out or HERE / "results" / f"explain_faithfulness_{Path(a.model).name}.json")
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{len(texts)} texts from {a.data}, model {a.model}, {a.threads} threads")
    head = "".join(f"  comp@{k:<3}" for k in ks) + "".join(f"  suff@{k:<3}" for k in ks)
    print(f"{'method':<10}{head}  median s/text")
    for m in methods:
        c = "".join(f"  {table[m]['comprehensiveness'][k]:8.4f}" for k in ks)
        s = "".join(f"  {table[m]['sufficiency'][k]:8.4f}" for k in ks)
        print(f"{m:<10}{c}{s}  {table[m]['median_seconds']:.4f}")
    if errors:
        c = result["ig_completeness_error"]
        print(
            f"IG completeness error (probability units): median {c['median']:.4f}, p95 {c['p95']:.4f}, max {c['max']:.4f}"
        )
    if "random" in table:
        for m in methods:
            ratio = table[m]["comprehensiveness"][20] / max(table["random"]["comprehensiveness"][20], 1e-9)
            print(f"{m}: comprehensiveness at 20% = {ratio:.1f}x random")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
