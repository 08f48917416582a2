"""Build "mix28", a 28-label multi-label set with rare labels and ~1.2 labels per text, from ../shared/data
(no 28-label emotion set such as GoEmotions is available offline; this one has its shape).

Labels: the 11 SemEval-2018 E-c emotions (1,000 tweets with all their labels, ~2.3 each, some none), the
6 TREC coarse question types, SST-2 pos/neg, SMS ham/spam, ChnSentiCorp pos/neg and 5 WikiText-2 article
topics (a paragraph is labelled with its article), each source subsampled to long-tailed per-label counts
(60 to 1,000 texts). The pool is split 65/12/23 into train/dev/test at random (seed 18). Output:
train.csv, dev.csv, test.csv (text, labels ';'-separated) and stats.json in --out (default
runs/data/mix28, outside git).

    python bench/build_mix28.py && python bench/multilabel.py --data runs/data/mix28 --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
ap.add_argument("--out", default="runs/data/mix28")
args = ap.parse_args()
D = Path(args.shared)
OUT = Path(args.out)
rng = random.Random(18)


def read(name, split, col="label"):
    p = D / name / f"{split}.csv"
    if not p.exists():
        return []
    with open(p, encoding="utf-8", newline="") as f:
        return [(r["text"], r[col]) for r in csv.DictReader(f)]


def allsplits(name, col="label"):
    return read(name, "train", col) + read(name, "dev", col) + read(name, "test", col)


pool = []  # (text, [labels])
# semeval tweets: 1000, all labels kept (empty = none)
sem = allsplits("semeval2018_ec", "labels")
rng.shuffle(sem)
pool += [(t, [x for x in lab.split(";") if x]) for t, lab in sem[:1000]]


def take(rows, mapping, counts):
    by = {}
    for t, lab in rows:
        by.setdefault(lab, []).append(t)
    for lab, n in counts.items():
        ts = by[lab]
        rng.shuffle(ts)
        pool.extend((t, [mapping(lab)]) for t in ts[:n])


take(allsplits("sst2"), lambda v: "sst_pos" if v == "1" else "sst_neg", {"1": 1000, "0": 600})
take(
    allsplits("trec6"),
    lambda v: "q_" + v,
    {"DESC": 600, "ENTY": 450, "HUM": 350, "LOC": 200, "NUM": 150, "ABBR": 60},
)
take(allsplits("sms_spam"), lambda v: "sms_" + v, {"ham": 700, "spam": 150})
take(allsplits("chnsenticorp"), lambda v: "zh_pos" if v == "1" else "zh_neg", {"1": 250, "0": 100})

# WikiText-2 valid: paragraphs labelled by article, 5 largest articles
arts, cur = {}, None
for line in (D / "pretrain_en" / "train.txt").read_text(encoding="utf-8").splitlines():
    m = re.match(r"^ = ([^=].*[^=]) = $", line)
    if m:
        cur = m.group(1)
        continue
    s = line.strip()
    if cur and s and not s.startswith("="):
        arts.setdefault(cur, []).append(s)
top = sorted((a for a in arts if "<unk>" not in a), key=lambda a: -len(arts[a]))[:5]
for i, a in enumerate(top):
    pool.extend((t, [f"wiki{i}"]) for t in arts[a])

rng.shuffle(pool)
n = len(pool)
a, b = int(0.65 * n), int(0.77 * n)
OUT.mkdir(parents=True, exist_ok=True)
stats = {"wiki_articles": top}
for name, rows in (("train", pool[:a]), ("dev", pool[a:b]), ("test", pool[b:])):
    with open(OUT / f"{name}.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "labels"])
        for t, ls in rows:
            w.writerow([t, ";".join(ls)])
    c = Counter(x for _, ls in rows for x in ls)
    stats[name] = {
        "rows": len(rows),
        "labels_per_text": sum(len(ls) for _, ls in rows) / len(rows),
        "n_labels": len(c),
        "counts": dict(c.most_common()),
    }
(OUT / "stats.json").write_text(json.dumps(stats, indent=1))
print(
    json.dumps(
        {
            k: (v if k == "wiki_articles" else {kk: vv for kk, vv in v.items() if kk != "counts"})
            for k, v in stats.items()
        },
        indent=1,
    )
)
print(stats["train"]["counts"])
