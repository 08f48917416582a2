"""The TF-IDF + logistic regression baseline alone, for a text,label dataset (train.csv / dev.csv /
test.csv): exactly what every `bertcls train` fits beside the model (`bertcls.core.baseline`), without the
BERT. Character n-grams (1-3) for Chinese, word n-grams (1-2) otherwise; C chosen on dev (or a seeded 10%
split of train when there is no dev.csv). Seconds.

    python bench/tfidf_baseline.py --data ../shared/data/chnsenticorp

Prints test accuracy and macro-F1; writes JSON to --out (default bench/results/tfidf_<data>.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def main() -> None:
    from bertcls.core import baseline
    from bertcls.core.data import Columns, load, split_validation

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "chnsenticorp"))
    p.add_argument("--metric", default="f1_macro")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    data = Path(a.data)
    cols = Columns(text="text", text_pair=None, label="label")
    train, test = load(data / "train.csv", cols), load(data / "test.csv", cols)
    if (data / "dev.csv").is_file():
        dev = load(data / "dev.csv", cols)
    else:
        train, dev = split_validation(train, 0.1, a.seed, False)
    labels = sorted(train.label_set())
    model, report = baseline.fit(train, dev, labels, False, a.metric)
    from bertcls.core.scoring import as_logits, scalar, score_logits

    test_m = score_logits(as_logits(model.predict_proba(test.texts), False), test, labels, False)
    result = {"data": str(data)} | {k: v for k, v in report.items() if k != "validation"}
    result |= {"validation": scalar(report["validation"]), "test": scalar(test_m)}
    out = Path(a.out or HERE / "results" / f"tfidf_{data.name}.json")
    out.write_text(json.dumps(result, indent=2))
    print(
        f"{baseline.NAME} ({report['analyzer']}, C={report['C']}): test accuracy {test_m['accuracy']:.4f}, "
        f"macro-F1 {test_m['f1_macro']:.4f} (n={test_m['n']}, {report['fit_seconds']} s)\nwritten to {out}"
    )


if __name__ == "__main__":
    main()
