"""Which Integrated Gradients set-up finds the words the model needs? (issue 13; chose the [MASK] baseline)

For each of the first N texts, IG (captum ``LayerIntegratedGradients`` on the word-piece embeddings,
towards the predicted label) is run with each baseline token ([PAD], [MASK], [UNK]: special tokens kept)
and output (probability, log-probability, centred logit), and with more steps; the words are ranked by
score and the top 20% deleted. Reported: the mean drop of the predicted probability (comprehensiveness at
20%, higher is better), with random scores as the floor.

    python bench/ig_baselines.py runs/chnsenticorp-zh-tapt ../shared/data/chnsenticorp/test.csv 100
"""

from __future__ import annotations

import csv
import math
import random
import sys

import numpy as np

VARIANTS = [("pad", "prob", 32), ("mask", "prob", 32), ("unk", "prob", 32)]
VARIANTS += [("pad", "logprob", 32), ("pad", "logit", 32), ("pad", "prob", 128)]


def ig(clf, row: dict, y: int, fill_name: str, output: str, steps: int) -> np.ndarray:
    import torch
    from captum.attr import LayerIntegratedGradients

    model, tok = clf.model, clf.tokenizer
    ids = torch.tensor([row["input_ids"]])
    tt = torch.tensor([row["token_type_ids"]])
    special = torch.tensor(
        tok.get_special_tokens_mask(row["input_ids"], already_has_special_tokens=True)
    ).bool()
    fill = {"pad": tok.pad_token_id, "mask": tok.mask_token_id, "unk": tok.unk_token_id}[fill_name]
    base = torch.where(special, ids, torch.full_like(ids, fill))

    def forward(i, t, m):
        logits = model(input_ids=i, token_type_ids=t, attention_mask=m).logits
        if output == "prob":
            return torch.softmax(logits, -1)
        if output == "logprob":
            return torch.log_softmax(logits, -1)
        return logits - logits.mean(-1, keepdim=True)

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    with torch.enable_grad():
        attr = lig.attribute(
            ids,
            baselines=base,
            target=[y],
            additional_forward_args=(tt, torch.ones_like(ids)),
            n_steps=steps,
            internal_batch_size=64,
        )
    return attr.sum(-1)[0].detach().numpy()


def main() -> None:
    import torch

    from bertcls import TextClassifier
    from bertcls.analysis.attribution import tokenize, without

    model_dir, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    clf = TextClassifier.from_pretrained(model_dir, device="cpu", ensemble=False)
    with open(data, encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)][:n]
    comp: dict = {v: [] for v in [*VARIANTS, "random"]}
    rng = random.Random(0)
    for text in texts:
        row, words, _ = tokenize(clf, text, None)
        p = clf.probabilities(clf.row_logits([row]))[0]
        y = int(p.argmax())
        for v in comp:
            if v == "random":
                s = np.array([rng.random() for _ in words])
            else:
                t = ig(clf, row, y, *v)
                s = np.array([t[w.tokens].sum() for w in words])
            k = max(1, math.ceil(0.2 * len(words)))
            top = {t for i in np.argsort(-s, kind="stable")[:k] for t in words[i].tokens}
            rest = without(row, top)
            comp[v].append(float(p[y] - clf.probabilities(clf.row_logits([rest]))[0, y]))
    for v, c in comp.items():
        print(v, round(float(np.mean(c)), 4))


if __name__ == "__main__":
    main()
