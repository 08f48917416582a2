"""Frozen-feature probe: what a (pretrained) BERT's representations know about a task before fine-tuning.

For each model directory, logistic regression is fitted on frozen features of the train split and scored on
test: the mean of the last hidden states, the pooled [CLS] output, and the mean of the input word embeddings.
Comparing a pretrained model with the same architecture at random initialisation shows whether pretraining
put task-relevant structure into the weights at all (fine-tuning can relearn most of it, so its accuracy
alone does not say). A minute per tiny model on 2 cores.

    python bench/probe_features.py --data ../shared/data/chnsenticorp \\
        runs/zh-tiny-random-init runs/pretrain-zh-tiny-seq32

Prints one line per model; writes JSON to --out (default bench/results/probe_<data>.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read(path: Path) -> tuple[list[str], list[str]]:
    from bertcls.core.data import Columns, load

    data = load(path, Columns())  # the package's reader: same formats and row-level errors as 'bertcls train'
    return data.texts, data.labels


def features(model_dir: str, texts: list[str], max_length: int, batch_size: int = 128) -> dict:
    import numpy as np
    import torch
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir).eval()
    out: dict[str, list] = {"mean_hidden": [], "pooled_cls": [], "mean_embedding": []}
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            b = tok(
                texts[i : i + batch_size],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            o = model(**b)
            mask = b["attention_mask"].unsqueeze(-1).float()
            emb = model.embeddings.word_embeddings(b["input_ids"])
            out["mean_hidden"].append(((o.last_hidden_state * mask).sum(1) / mask.sum(1)).numpy())
            out["pooled_cls"].append(o.pooler_output.numpy())
            out["mean_embedding"].append(((emb * mask).sum(1) / mask.sum(1)).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="model directories (HF BERT checkpoints)")
    p.add_argument("--data", required=True, help="directory with train.csv and test.csv (text,label)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    x_train, y_train = read(data / "train.csv")
    x_test, y_test = read(data / "test.csv")
    results = {}
    for m in args.models:
        f_train = features(m, x_train, args.max_length)
        f_test = features(m, x_test, args.max_length)
        results[m] = {
            k: round(LogisticRegression(max_iter=2000).fit(f_train[k], y_train).score(f_test[k], y_test), 4)
            for k in f_train
        }
        print(m, json.dumps(results[m]), flush=True)
    out = Path(args.out or HERE / "results" / f"probe_{data.name}.json")
    report = {
        "command": "python bench/probe_features.py --data " + args.data + " " + " ".join(args.models),
        "classifier": "sklearn LogisticRegression(max_iter=2000), frozen features, test accuracy",
        "max_length": args.max_length,
        "results": results,
    }
    from bertcls.core.io import atomic_write_text

    atomic_write_text(out, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
