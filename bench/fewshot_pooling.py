"""Why `train --method setfit` keeps mean pooling (core.sentence_model): SetFit on MiniLM with 8 SST-2
examples per class, the sentence embedding taken (a) by mean pooling, as the model ships, or (b) from
BERT's pooler ([CLS] -> dense -> tanh), the one feature `BertForSequenceClassification` could hold; and
(c) a regression on (b)'s features after training with (a). Test accuracy on the first 600 test texts.

    python bench/fewshot_pooling.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def body(model_dir: str, mode: str):
    from sentence_transformers import SentenceTransformer, models

    if mode == "mean":
        return SentenceTransformer(model_dir, device="cpu")
    t = models.Transformer(model_dir, max_seq_length=64)
    dense = models.Dense(384, 384, activation_function=torch.nn.Tanh())
    dense.linear.load_state_dict(t.auto_model.pooler.dense.state_dict())  # BERT's own pooler
    return SentenceTransformer(modules=[t, models.Pooling(384, pooling_mode="cls"), dense], device="cpu")


@torch.no_grad()
def pooler_features(st, texts: list[str]) -> np.ndarray:
    bert, tok = st[0].auto_model.eval(), st[0].tokenizer
    out = []
    for i in range(0, len(texts), 64):
        b = tok(texts[i : i + 64], padding=True, truncation=True, max_length=64, return_tensors="pt")
        out.append(bert(**b).pooler_output)
    return torch.cat(out).numpy()


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.linear_model import LogisticRegression

    from bertcls.core.models import resolve_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/sst2")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--per-class", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(1)
    model_dir = resolve_model("minilm-l6")
    train, test = rows(Path(a.data) / "train.csv"), rows(Path(a.data) / "test.csv")[:600]
    y_all, y_test = np.array([r["label"] for r in train]), [r["label"] for r in test]
    res: dict[str, list[float]] = {"mean": [], "pooler": [], "pooler_head_after_mean": []}
    for seed in map(int, a.seeds.split(",")):
        rng = np.random.default_rng(seed)
        idx = np.concatenate(
            [rng.choice(np.flatnonzero(y_all == c), a.per_class, replace=False) for c in np.unique(y_all)]
        )
        ds = Dataset.from_dict({"text": [train[i]["text"] for i in idx], "label": [y_all[i] for i in idx]})
        for mode in ("mean", "pooler"):
            model = SetFitModel(
                model_body=body(model_dir, mode), model_head=LogisticRegression(max_iter=1000)
            )
            args = TrainingArguments(batch_size=16, num_epochs=1, seed=seed, report_to="none", save_strategy="no",
                                     output_dir="/tmp/bench-fewshot-pooling")  # fmt: skip
            Trainer(model=model, args=args, train_dataset=ds).train()
            res[mode].append(float(np.mean(np.asarray(model.predict([r["text"] for r in test])) == y_test)))
            if mode == "mean":
                head = LogisticRegression(max_iter=1000).fit(
                    pooler_features(model.model_body, list(ds["text"])), ds["label"]
                )
                acc = head.score(pooler_features(model.model_body, [r["text"] for r in test]), y_test)
                res["pooler_head_after_mean"].append(float(acc))
        print(seed, {k: round(v[-1], 4) for k, v in res.items()}, flush=True)
    summary = {k: [float(np.mean(v)), float(np.std(v, ddof=1))] for k, v in res.items()}
    out = HERE / "results" / "fewshot_pooling.json"
    out.write_text(
        json.dumps({"command": " ".join(sys.argv), "per_seed": res, "mean_std": summary}, indent=2)
    )
    for k, (m, s) in summary.items():
        print(f"{k:<24} {m:.4f} +- {s:.4f}")


if __name__ == "__main__":
    main()
