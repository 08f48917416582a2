"""The classical baseline beside every BERT, and the BERT + baseline ensemble.

TF-IDF + logistic regression (scikit-learn): word 1-2-grams, or character 1-3-grams for Chinese, where
words are not delimited (chosen from the training text), hashed into 2^20 buckets, n-grams of fewer than
two training texts dropped. It fits in seconds and sees every character of
every text, so it is the honest reference point: on ChnSentiCorp it beat the best offline Chinese BERT
(README, "Baselines"). One-vs-rest liblinear: scikit-learn's liblinear solver has no multinomial mode, and
lbfgs on sparse n-grams was several times slower here; for multi-label the same one-vs-rest model gives
per-label probabilities, with thresholds tuned on validation like the BERT's. The regularisation C is
chosen on the validation split by the run's own metric.

The ensemble of the two (core.ensemble) is fitted here, at the end of `bertcls train --ensemble`.

Saved with skops (scikit-learn's safe format, no pickle): loading accepts only the types a baseline is made
of, so a tampered file is refused instead of run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertcls.core import metrics
from bertcls.core.data import TextData
from bertcls.core.errors import UserError
from bertcls.core.language import cjk_share
from bertcls.core.scoring import as_logits, label_targets, score_logits, split_scalars

log = logging.getLogger("bertcls")

BASELINE_FILE = "baseline.skops"
NAME = "TF-IDF + logistic regression"
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
N_FEATURES = 2**20  # hash buckets: collisions are rare for the ~10^5 n-grams of a training set
MIN_DF = 2
CHAR_SCRIPT_SHARE = 0.5  # CJK share of the letters above which words are not delimited: character n-grams
# Types beyond scikit-learn's defaults that a baseline legitimately holds: the constant predictor
# one-vs-rest uses for a label that is always (or never) present in training.
TRUSTED = ("sklearn.multiclass._ConstantPredictor",)


def joined(texts: Sequence[str], pairs: Sequence[str] | None) -> list[str]:
    """Sentence pairs become one text for the bag of n-grams (the newline keeps n-grams from spanning)."""
    return list(texts) if pairs is None else [f"{a}\n{b}" for a, b in zip(texts, pairs)]


def hasher(analyzer: str):
    """Hashed n-gram counts. Hashed rather than a fitted vocabulary (TfidfVectorizer): skops stores a
    vocabulary as one node per entry, and ChnSentiCorp's 137k character n-grams took 13 s and 89 MB to
    save and 10 s to load (every TextClassifier load); hashed, the saved baseline is 2 MB, 0.5 s, 0.1 s."""
    from sklearn.feature_extraction.text import HashingVectorizer

    common = {"n_features": N_FEATURES, "alternate_sign": False, "norm": None}
    if analyzer == "char":
        return HashingVectorizer(analyzer="char", ngram_range=(1, 3), **common)
    # one-character words kept ("a", "i", digits): the default pattern drops them
    return HashingVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", **common)


def tfidf_weights(counts):
    """Sublinear TF-IDF fitted on the training counts, with n-grams seen in fewer than MIN_DF training
    texts weighted 0, which is what TfidfVectorizer(min_df=2) does by dropping them (one-off n-grams are
    noise the classifier would otherwise fit). Returns the transformer and how many n-grams it keeps."""
    from sklearn.feature_extraction.text import TfidfTransformer

    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
    df = np.bincount(counts.tocsr().indices, minlength=N_FEATURES)
    idf = tfidf.idf_.copy()
    idf[df < MIN_DF] = 0.0
    tfidf.idf_ = idf
    return tfidf, int((df >= MIN_DF).sum())


@dataclass
class Baseline:
    """A fitted TF-IDF + logistic regression pipeline whose probability columns follow ``labels``."""

    pipeline: Any
    labels: list[str]
    multi: bool

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, len(self.labels)), np.float32)
        return self.columns(self.pipeline.predict_proba(joined(texts, pairs)))

    def columns(self, probs: np.ndarray) -> np.ndarray:
        """The classifier's probability columns in ``labels`` order."""
        if self.multi:
            return np.asarray(probs, dtype=np.float32)
        # classes the training split never had (labels given with --labels) get probability 0
        out = np.zeros((len(probs), len(self.labels)), np.float32)
        index = {lab: i for i, lab in enumerate(self.labels)}
        for j, cls in enumerate(self.pipeline.classes_):
            out[:, index[str(cls)]] = probs[:, j]
        return out


def _classifier(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear"))


def fit(
    train: TextData,
    validation: TextData,
    labels: list[str],
    multi: bool,
    metric: str,
    positive: int | None = None,
) -> tuple[Baseline, dict]:
    """Fit on ``train``, choose C on ``validation`` by ``metric``; returns the baseline and a report
    (analyzer, C, seconds, validation metrics, and for multi-label the tuned thresholds)."""
    import warnings

    from sklearn.feature_selection import VarianceThreshold
    from sklearn.pipeline import Pipeline

    t0 = time.perf_counter()
    analyzer = "char" if cjk_share(train.texts) > CHAR_SCRIPT_SHARE else "word"
    hashing = hasher(analyzer)
    counts = hashing.transform(joined(train.texts, train.pairs))
    tfidf, n_features = tfidf_weights(counts)
    x_train = tfidf.transform(counts)
    # Only the buckets that carry weight go to the classifier: liblinear's cost grows with the 2^20 columns
    # even when they are empty (TREC-6: 11 s for one C against 0.5 s; same probabilities to 1e-6).
    try:
        used = VarianceThreshold(0.0).fit(x_train)
    except ValueError:  # every n-gram occurs in a single training text: nothing to learn from
        raise UserError(
            f"the TF-IDF baseline has no n-gram shared by two of the {len(train)} training texts; "
            f"add training data or pass --no-baseline"
        ) from None
    x_train = used.transform(x_train)
    x_val = used.transform(tfidf.transform(hashing.transform(joined(validation.texts, validation.pairs))))
    y = np.stack(label_targets(train, labels, True)).astype(int) if multi else list(train.labels)
    best: tuple | None = None
    by_c = {}
    for c in C_GRID:
        with warnings.catch_warnings():  # "label not present in all training examples": handled
            warnings.simplefilter("ignore", UserWarning)
            clf = _classifier(c).fit(x_train, y)
        steps = [("hash", hashing), ("tfidf", tfidf), ("used", used), ("clf", clf)]
        candidate = Baseline(Pipeline(steps), labels, multi)
        probs = candidate.columns(clf.predict_proba(x_val))
        m = score_logits(as_logits(probs, multi), validation, labels, multi, tune=multi, positive=positive)
        by_c[c] = m.get(metric)
        if best is None or (m.get(metric) is not None and metrics.is_better(metric, m[metric], best[1])):
            best = (candidate, m[metric], m, c)
    baseline, _, val_m, c = best  # type: ignore[misc]
    report = {
        "model": NAME,
        "analyzer": f"{analyzer} n-grams {'1-3' if analyzer == 'char' else '1-2'}",
        "features": n_features,
        "C": c,
        f"validation_{metric}_by_C": by_c,
        "fit_seconds": round(time.perf_counter() - t0, 2),
        "thresholds": val_m.pop("thresholds", None),
        "validation": val_m,
    }
    return baseline, report


def save(baseline: Baseline, path: Path) -> None:
    import zipfile

    import skops.io as sio

    # the idf and coefficient arrays are mostly zeros (unused buckets): deflate makes them small
    sio.dump(baseline.pipeline, str(path), compression=zipfile.ZIP_DEFLATED)


def load(path: str | Path, labels: list[str], multi: bool) -> Baseline:
    """Load a saved baseline, refusing a missing or corrupt file and any type a baseline does not hold."""
    p = Path(path)
    fix = (
        "retrain the model with bertcls train (it saves the baseline unless --no-baseline), "
        "or use the model alone: --no-ensemble (and no --baseline for evaluate)"
    )
    if not p.is_file():
        raise UserError(f"{p}: the model's saved TF-IDF baseline is missing; {fix}")
    try:
        import skops.io as sio

        untrusted = sio.get_untrusted_types(file=str(p))
        if unexpected := sorted(set(untrusted) - set(TRUSTED)):
            raise UserError(
                f"{p}: holds types a bertcls baseline never has ({', '.join(unexpected)}); "
                f"refusing to load it. {fix[0].upper()}{fix[1:]}"
            )
        pipeline = sio.load(str(p), trusted=list(untrusted))
    except UserError:
        raise
    except Exception as e:  # zip/JSON damage surfaces as many exception types: one message for all
        raise UserError(
            f"{p}: the saved TF-IDF baseline is corrupt ({type(e).__name__}: {e}); {fix}"
        ) from None
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline

    steps = getattr(pipeline, "named_steps", {})
    if not (isinstance(pipeline, Pipeline) and isinstance(steps.get("clf"), OneVsRestClassifier)):
        raise UserError(f"{p}: is not a TF-IDF baseline written by bertcls train; {fix}")
    n_out = len(pipeline.classes_)
    if multi and n_out != len(labels):
        raise UserError(f"{p}: the baseline has {n_out} labels but the model has {len(labels)}; {fix}")
    if not multi and not {str(c) for c in pipeline.classes_} <= set(labels):
        raise UserError(f"{p}: the baseline's classes do not match the model's labels; {fix}")
    return Baseline(pipeline, list(labels), multi)


def points(a: float, b: float) -> str:
    """'+2.2' points from two fractions."""
    return f"{100 * (a - b):+.1f}"


def comparison_line(result: dict, metric: str) -> str | None:
    """'BERT +2.2 points over TF-IDF (test accuracy 0.9123 vs 0.8903)', from a train result."""
    base = result.get("baseline")
    if not base:
        return None
    split = "test" if "test" in base else "validation"
    key = "accuracy" if "accuracy" in base[split] else metric
    ours, theirs = result[split].get(key), base[split].get(key)
    if ours is None or theirs is None:
        return None
    verdict = "over" if ours > theirs else ("level with" if ours == theirs else "below")
    line = f"BERT {points(ours, theirs)} points {verdict} TF-IDF ({split} {key} {ours:.4f} vs {theirs:.4f})"
    if ens := result.get("ensemble"):
        line += f"; ensemble ({ens['method']}) {ens[split].get(key):.4f}"
    elif ours < theirs:
        line += "; --ensemble combines them"
    return line


def compare(
    splits: Any,
    labels: list[str],
    multi: bool,
    metric: str,
    bert_val: np.ndarray | None,
    bert_test: np.ndarray | None,
    out: Path,
    method: str = "stack",
    positive: int | None = None,
    tune_threshold: bool = False,
) -> tuple[dict, dict]:
    """End of `bertcls train`: fit the baseline, score it on validation and test beside the BERT, save it
    in ``out``, and when ``bert_val`` (BERT's validation probabilities) is given choose the ensemble (and
    with ``tune_threshold`` its binary decision threshold for class ``positive``). Returns the entries for metrics.json and for bertcls.json."""
    t0 = time.perf_counter()
    try:
        base, report = fit(splits.train, splits.validation, labels, multi, metric, positive)
    except UserError as e:  # the trained model is kept: a baseline that cannot be fitted is only reported
        skipped = "baseline" + (" and ensemble" if bert_val is not None else "")
        log.warning("%s skipped: %s", skipped, e)
        return {"baseline_skipped": str(e)}, {}
    thresholds = None if report["thresholds"] is None else np.asarray(report["thresholds"])
    test_probs = None
    if splits.test is not None:
        test_probs = base.predict_proba(splits.test.texts, splits.test.pairs)
        report["test"] = score_logits(
            as_logits(test_probs, multi), splits.test, labels, multi, thresholds, positive=positive
        )
    save(base, out / BASELINE_FILE)
    log.info(
        "baseline %s (%s, C=%s) in %.1f s: %s",
        NAME,
        report["analyzer"],
        report["C"],
        report["fit_seconds"],
        ", ".join(f"{s} {metric}={report[s][metric]:.4f}" for s in ("validation", "test") if s in report),
    )
    keep = ("model", "analyzer", "features", "C", "fit_seconds", "thresholds")
    meta = {"baseline": {"file": BASELINE_FILE} | {k: report[k] for k in keep}}
    meta["baseline"]["metrics"] = split_scalars(report)
    result = {"baseline": report}
    if bert_val is not None:
        result["ensemble"], meta["ensemble"] = _ensemble(
            base,
            splits,
            labels,
            multi,
            metric,
            bert_val,
            bert_test,
            test_probs,
            method,
            positive,
            tune_threshold,
        )
    # what the baseline (and the ensemble) added to the run's wall time
    report["total_seconds"] = round(time.perf_counter() - t0, 2)
    return result, meta


def _ensemble(
    base, splits, labels, multi, metric, bert_val, bert_test, test_probs, method, positive, tune_threshold
) -> tuple[dict, dict]:
    from bertcls.core import ensemble

    val_probs = base.predict_proba(splits.validation.texts, splits.validation.pairs)
    ens, val_m = ensemble.fit(
        bert_val, val_probs, splits.validation, labels, multi, metric, method, positive, tune_threshold
    )
    report = {"method": ens.method, "weight": ens.weight, "validation": val_m}
    if ens.threshold is not None:
        report["decision_threshold"] = ens.threshold
    if bert_test is not None and test_probs is not None:
        t = None if ens.thresholds is None else np.asarray(ens.thresholds)
        mixed = ens.combine(bert_test, test_probs, multi)
        report["test"] = score_logits(
            as_logits(mixed, multi),
            splits.test,
            labels,
            multi,
            t,
            decision=ens.decision(positive),
            positive=positive,
        )
    log.info("ensemble: %s, fitted on validation", ens.describe())
    meta = ens.as_meta() | {"metrics": split_scalars(report)}
    return report, meta
