"""Helpers shared by tests: tiny BERTs, tiny vocabularies, synthetic data files."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the checkout
POS = ["good", "great", "fine", "lovely", "superb", "happy", "wonderful", "nice"]
NEG = ["bad", "awful", "poor", "terrible", "sad", "boring", "ugly", "dull"]
FILLER = [
    "the",
    "movie",
    "film",
    "was",
    "a",
    "plot",
    "very",
    "really",
    "story",
    "and",
    "acting",
    "it",
    "is",
    "so",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_vocab(path: Path, words: list[str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(SPECIAL + sorted(set(words)) + ["##s", "##ly"]) + "\n")
    return path / "vocab.txt"


def make_tiny_bert(path: Path, words: list[str] | None = None, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 BERT with a WordPiece vocabulary of the given words, saved as an HF directory."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = make_vocab(path, words or POS + NEG + FILLER + ["yes", "no", "maybe", "sport", "music", "news"])
    # transformers 5 takes the vocabulary itself (``vocab=``), no longer ``vocab_file=``.
    tokens = vocab.read_text().split()
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        words = rng.sample(FILLER, 4) + [rng.choice(POS if pos else NEG)] * 2
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": "positive" if pos else "negative"})
    return rows


def multilabel_rows(n: int, seed: int = 0) -> list[dict]:
    """Sentiment plus an optional 'film' tag, ';'-joined; rows that are neither film nor positive have no
    label."""
    out = []
    for r in sentiment_rows(n, seed=seed):
        labs = (["positive"] if r["label"] == "positive" else []) + (["film"] if "film" in r["text"] else [])
        out.append({"text": r["text"], "label": ";".join(labs)})
    return out


def pair_rows(n: int, seed: int = 0) -> list[dict]:
    """Sentence pairs (columns a, b): A is neutral filler, only B says the label, so a model that ignores B
    is at chance."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        word = rng.choice(POS if pos else NEG)
        rows.append({"a": " ".join(rng.sample(FILLER, 5)), "b": f"{word} {rng.choice(FILLER)} {word}",
                     "label": "positive" if pos else "negative"})  # fmt: skip
    return rows


def write_csv(path: Path, rows: list[dict], fields: list[str] | None = None) -> Path:
    fields = fields or list(rows[0].keys())
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def train_args(model: Path, files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        str(model),
        "--train-file",
        str(files["train"]),
        "--validation-file",
        str(files["dev"]),
        "--test-file",
        str(files["test"]),
        "--output-dir",
        str(out),
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--learning-rate",
        "3e-3",
        "--max-length",
        "32",
        "--warmup-ratio",
        "0",
        "--logging-steps",
        "2",
        *extra,
    ]


def poison_after(monkeypatch, n_steps: int) -> None:
    """AdamW's step n_steps fills the weights with NaN: a diverged run, as one on CUDA was."""
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def step(self, *a, **k):
        out = real_step(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == n_steps:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
