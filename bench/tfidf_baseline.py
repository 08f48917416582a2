"""TF-IDF + logistic regression baseline for a text,label dataset (train.csv / dev.csv / test.csv).

The reference point for the fine-tuned BERTs: character n-grams (1-3) for Chinese, where words are not
delimited, word n-grams (1-2) otherwise. The regularisation strength C is chosen on dev (or a 10% split of
train when there is no dev.csv), then the model is refit on train and scored once on test. Seconds.

    python bench/tfidf_baseline.py --data ../shared/data/chnsenticorp              # char n-grams (auto)
    python bench/tfidf_baseline.py --data ../shared/data/sst2 --analyzer word

Prints test accuracy and macro-F1; writes JSON to --out (default bench/results/tfidf_<data>.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_CJK = re.compile(r"[\u4e00-\u9fff]")


def read(path: Path) -> tuple[list[str], list[str]] | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] or "" for r in rows], [r["label"] for r in rows]


def vectorizer(analyzer: str):
    from sklearn.feature_extraction.text import TfidfVectorizer

    if analyzer == "char":
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    return TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "chnsenticorp"))
    p.add_argument("--analyzer", choices=["auto", "char", "word"], default="auto")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    data = Path(a.data)
    train, dev, test = read(data / "train.csv"), read(data / "dev.csv"), read(data / "test.csv")
    if train is None or test is None:
        raise SystemExit(f"{data}: needs train.csv and test.csv with text,label columns")
    analyzer = a.analyzer
    if analyzer == "auto":
        sample = "".join(train[0][:200])
        analyzer = "char" if len(_CJK.findall(sample)) > 0.3 * max(1, len(sample)) else "word"
    t0 = time.perf_counter()
    fit_x, fit_y = train
    if dev is None:  # tune on a seeded split of train, refit on all of it afterwards
        fit_x, dev_x, fit_y, dev_y = train_test_split(
            train[0], train[1], test_size=0.1, random_state=a.seed, stratify=train[1]
        )
        dev = (dev_x, dev_y)
    vec = vectorizer(analyzer).fit(fit_x)  # fitted once: only C varies in the search
    x_fit, x_dev = vec.transform(fit_x), vec.transform(dev[0])
    scores = {}
    for c in (1.0, 3.0, 10.0, 30.0, 100.0):
        clf = LogisticRegression(C=c, solver="liblinear").fit(x_fit, fit_y)
        scores[c] = f1_score(dev[1], clf.predict(x_dev), average="macro")
    best_c = max(scores, key=scores.get)
    model = make_pipeline(vectorizer(analyzer), LogisticRegression(C=best_c, solver="liblinear"))
    model.fit(train[0], train[1])
    pred = model.predict(test[0])
    result = {
        "data": str(data),
        "analyzer": analyzer,
        "C": best_c,
        "dev_f1_macro_by_C": scores,
        "n_train": len(train[0]),
        "n_test": len(test[0]),
        "test_accuracy": accuracy_score(test[1], pred),
        "test_f1_macro": f1_score(test[1], pred, average="macro"),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    out = Path(a.out or HERE / "results" / f"tfidf_{data.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"TF-IDF ({analyzer} n-grams) + logistic regression, C={best_c}: "
        f"test accuracy {result['test_accuracy']:.4f}, macro-F1 {result['test_f1_macro']:.4f} "
        f"(n={result['n_test']}, {result['seconds']} s)\nwritten to {out}"
    )


if __name__ == "__main__":
    main()
