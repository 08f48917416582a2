"""Build an English long-text set from SST-2 (issue 14): each text is K review sentences, its label the
majority of their sentence labels.

No English set among the shared data has long texts (SST-2, TREC-6, SMS and the SemEval tweets are one or
two sentences), and none can be downloaded here. A text made of K real review sentences whose label is
the majority of theirs has its evidence spread over the whole text: a model that reads only the first
window sees about half of it, so the set measures what reading the rest is worth. It is built from each
published split on its own (no sentence crosses from train to test). Each pass shuffles the split's
sentences and cuts them into groups of K (an odd K: no ties), so every sentence appears once per pass;
test uses several passes to have more texts (the same sentence then appears in several test texts, each
time among other sentences).

    python bench/make_sst2_docs.py --src ../shared/data/sst2 --out runs/data/sst2-docs3

Writes train.csv, dev.csv, test.csv (text,label) and SOURCE.md with the counts; the output directory
must not exist yet (nothing is overwritten).
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
from pathlib import Path


def read(path: Path) -> list[tuple[str, int]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["text"], int(r["label"])) for r in csv.DictReader(f)]


def build(rows: list[tuple[str, int]], k: int, passes: int, rng: random.Random) -> list[tuple[str, int]]:
    docs = []
    for _ in range(passes):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for i in range(0, len(order) - k + 1, k):
            group = [rows[j] for j in order[i : i + k]]
            positive = sum(label for _, label in group)
            docs.append((" ".join(text for text, _ in group), int(positive * 2 > k)))
    return docs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default="../shared/data/sst2")
    p.add_argument("--out", required=True)
    p.add_argument("--sentences", type=int, default=3, help="sentences per text (odd)")
    p.add_argument("--passes", default="train=1,dev=2,test=3", help="passes over each split's sentences")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.sentences < 1 or a.sentences % 2 == 0:
        p.error(f"--sentences {a.sentences}: give an odd number >= 1 (the label is a majority vote)")
    out = Path(a.out)
    if out.exists():
        p.error(f"--out {out}: already exists; give a new directory")
    passes = dict(item.split("=") for item in a.passes.split(","))
    rng = random.Random(a.seed)
    splits = {}
    for split in ("train", "dev", "test"):
        splits[split] = build(read(Path(a.src) / f"{split}.csv"), a.sentences, int(passes[split]), rng)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True)
    lines = [
        "# SST-2 documents (built by bench/make_sst2_docs.py)",
        "",
        f"Command: `python bench/make_sst2_docs.py --src {a.src} --out {a.out} --sentences {a.sentences} "
        f"--passes {a.passes} --seed {a.seed}`",
        "",
        f"Each text joins {a.sentences} SST-2 sentences of one split drawn without replacement within a pass;",
        "its label is the majority of their labels (1 = positive).",
        "",
        "| split | passes | texts | positive | median words | longest words |",
        "|---|---|---|---|---|---|",
    ]
    for split, docs in splits.items():
        with (tmp / f"{split}.csv").open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["text", "label"])
            w.writerows(docs)
        words = [len(t.split()) for t, _ in docs]
        pos = sum(label for _, label in docs)
        lines.append(
            f"| {split} | {passes[split]} | {len(docs)} | {pos} | {statistics.median(words):.0f} | {max(words)} |"
        )
    (tmp / "SOURCE.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.rename(out)
    print("\n".join(lines[-5:]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
