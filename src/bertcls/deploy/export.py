"""``bertcls export MODEL_DIR --format onnx [--quantize int8]``: an ONNX model for onnxruntime, checked.

Steps: trace the classifier to ONNX with dynamic batch and sequence axes (inputs ``input_ids``,
``attention_mask``, ``token_type_ids``; output ``logits``); fuse BERT operators with onnxruntime's
transformer optimizer; optionally quantize the weights to int8 (dynamic quantization); then run PyTorch and
onnxruntime side by side on sample texts and refuse the export (nothing written) unless they agree. The
numbers are printed and kept in ``export_report.json`` next to ``model.onnx``.

Use the export with ``--backend onnx`` (predict, evaluate, serve) or
``TextClassifier.from_pretrained(MODEL_DIR, backend="onnx")``.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bertcls.core.config import POSITIONAL, require
from bertcls.core.errors import UserError, require_extra
from bertcls.core.io import atomic_write_text, staged_dir
from bertcls.deploy.onnx_backend import MODEL_FILE, REPORT_FILE, OnnxModel, weights_digest
from bertcls.deploy.onnx_graph import INPUTS, dummy_inputs, optimize_graph, quantize_int8, trace_to_onnx


@dataclass
class ExportConfig:
    model_dir: str = field(metadata={POSITIONAL: True})
    """Directory written by `bertcls train`."""
    format: Literal["onnx"] = "onnx"
    """Export format."""
    quantize: Literal["none", "int8"] = "none"
    """int8: dynamic int8 quantization of the weights (about 4x smaller, usually faster on CPU, slightly less exact)."""
    output_dir: str | None = None
    """Where to write the export (default: MODEL_DIR/onnx, or MODEL_DIR/onnx-int8 with --quantize int8)."""
    optimize: bool = True
    """Fuse BERT operators (attention, layer norm, GELU) with onnxruntime's transformer optimizer; if that fails the plain graph is kept."""
    opset: int = 17
    """ONNX opset version."""
    sample_file: str | None = None
    """Texts for the parity check: .txt (one per line) or .csv/.tsv/.jsonl/.parquet with the training text column; default: texts made from the vocabulary."""
    num_samples: int = 64
    """How many sample texts the parity check uses."""
    max_diff: float = 1e-3
    """Largest allowed |logit difference| to PyTorch on the samples (fp32 exports; int8 is judged by label agreement)."""
    min_agreement: float | None = None
    """Smallest allowed share of samples labelled as PyTorch labels them (default: 1.0 for fp32, 0.95 for int8)."""
    threads: int | None = None
    """CPU threads for the parity check."""
    seed: int = 0
    """Seed for the generated sample texts."""

    def __post_init__(self) -> None:
        require(self.num_samples >= 2, "num_samples", self.num_samples, "must be >= 2")
        require(self.max_diff >= 0, "max_diff", self.max_diff, "must be >= 0")
        require(
            self.min_agreement is None or 0 <= self.min_agreement <= 1,
            "min_agreement",
            self.min_agreement,
            "must be between 0 and 1",
        )
        require(7 <= self.opset <= 21, "opset", self.opset, "must be between 7 and 21 (17 is well tested)")
        require(self.threads is None or self.threads >= 1, "threads", self.threads, "must be >= 1")

    @property
    def agreement_needed(self) -> float:
        if self.min_agreement is not None:
            return self.min_agreement
        return 0.95 if self.quantize == "int8" else 1.0

    def export_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        return Path(self.model_dir) / ("onnx-int8" if self.quantize == "int8" else "onnx")


def _require_deps() -> None:
    for mod in ("onnx", "onnxruntime", "onnxscript"):
        require_extra(mod, "export", "bertcls export")


# ---- sample texts -------------------------------------------------------------------------------------
def vocab_texts(tokenizer: Any, n: int, max_length: int, seed: int = 0) -> list[str]:
    """``n`` texts of whole vocabulary words, from one word to past ``max_length`` (so truncation is
    exercised), mostly short as real inputs are."""
    special = set(tokenizer.all_special_tokens)
    words = []
    for w in tokenizer.get_vocab():
        w2 = w.lstrip("\u2581\u0120")  # SentencePiece / byte-level BPE word markers
        if (
            w in special
            or w.startswith("##")
            or (w.startswith("[") and w.endswith("]"))
            or not w2.isprintable()
        ):
            continue
        if w2.strip():
            words.append(w2)
    alpha = sorted({w for w in words if w.isalpha()}) or sorted(set(words))
    if not alpha:
        raise UserError("the tokenizer's vocabulary has no usable words for sample texts; pass --sample-file")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        frac = i / max(n - 1, 1)
        length = max(1, round(frac * frac * max_length * 1.25))
        out.append(" ".join(rng.choice(alpha) for _ in range(length)))
    rng.shuffle(out)
    return out


def file_texts(path: str, meta: dict, n: int) -> tuple[list[str], list[str] | None]:
    from bertcls.core.readers import detect_format, iter_records

    p = Path(path)
    fmt = detect_format(p)
    names, rows = iter_records(p, fmt=fmt)
    text_col = "text" if fmt == "lines" else (meta.get("text_column") or "text")
    pair_col = None if fmt == "lines" else meta.get("text_pair_column")
    if text_col not in names:
        raise UserError(
            f"{p}: no column '{text_col}' (columns: {', '.join(names)}); "
            f"the sample file needs the text column the model was trained on"
        )
    if pair_col and pair_col not in names:
        raise UserError(
            f"{p}: no column '{pair_col}'; this model reads text pairs, so the sample file needs it"
        )
    texts: list[str] = []
    pairs: list[str] = []
    for _, rec in rows:
        t = str(rec.get(text_col) or "")
        if t.strip():
            texts.append(t)
            pairs.append(str(rec.get(pair_col) or "") if pair_col else "")
        if len(texts) >= n:
            break
    if len(texts) < 2:
        raise UserError(f"{p}: fewer than 2 non-empty texts; the parity check needs a few dozen")
    return texts, (pairs if pair_col else None)


GENERATED = "generated from the vocabulary"  # the parity samples' source when no real texts are at hand


def sample_inputs(cfg: ExportConfig, clf: Any) -> tuple[list[str], list[str] | None, str]:
    """--sample-file; else the texts the model's run was validated (or trained) on, when that file is
    still where the run recorded it, plus a quarter generated texts of every length (padding and
    truncation); else texts generated from the vocabulary. Real texts first because strings of random
    words sit near any classifier's decision boundary: on them int8's label agreement with PyTorch is
    noise (SST-2's MiniLM: 93.8-95.3% on 64 generated texts, 98.9% on the test set)."""
    if cfg.sample_file:
        texts, pairs = file_texts(cfg.sample_file, clf.meta, cfg.num_samples)
        return texts, pairs, cfg.sample_file
    generated = cfg.num_samples
    real = recorded_data_file(cfg.model_dir)
    texts: list[str] = []
    pairs: list[str] | None = [] if clf.meta.get("text_pair_column") else None
    if real:
        generated = max(2, cfg.num_samples // 4)
        texts, pairs = file_texts(real, clf.meta, cfg.num_samples - generated)
    texts = texts + vocab_texts(clf.tokenizer, generated, clf.max_length, cfg.seed)
    if pairs is not None:  # a pair model: check the second segment too
        pairs = pairs + vocab_texts(clf.tokenizer, generated, max(clf.max_length // 2, 1), cfg.seed + 1)
    return texts, pairs, (f"{real} and {generated} {GENERATED}" if real else GENERATED)


def recorded_data_file(model_dir: str) -> str | None:
    """The validation (else training) file the model's run_config.yaml records, if it is still there."""
    from bertcls.core.config import load_yaml

    try:
        recorded = load_yaml(Path(model_dir) / "run_config.yaml")
    except (UserError, OSError):  # none, unreadable or not YAML: the check falls back to generated texts
        return None
    for key in ("validation_file", "train_file"):
        f = recorded.get(key)
        if f and Path(f).is_file():
            return str(f)
    return None


# ---- parity -------------------------------------------------------------------------------------------
def compare(reference: np.ndarray, candidate: np.ndarray, clf: Any) -> dict:
    """How far ``candidate`` logits are from ``reference``, and how often they give the same labels."""
    diff = np.abs(reference - candidate)
    p_ref, p_new = clf.probabilities(reference), clf.probabilities(candidate)
    if clf.multi_label:
        same = ((p_ref >= clf.thresholds) == (p_new >= clf.thresholds)).all(axis=1)
    else:  # the labels the model gives (a tuned binary threshold included)
        same = np.asarray(clf.decide(p_ref)) == np.asarray(clf.decide(p_new))
    return {
        "n": int(len(reference)),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "max_prob_diff": float(np.abs(p_ref - p_new).max()) if diff.size else 0.0,
        "agreement": float(same.mean()) if len(same) else 1.0,
        "disagreements": int((~same).sum()),
    }


def verdict(parity: dict, cfg: ExportConfig) -> list[str]:
    """Reasons the export fails the check (empty: it passes)."""
    bad = []
    if cfg.quantize == "none" and parity["max_abs_diff"] > cfg.max_diff:
        bad.append(f"max |logit diff| {parity['max_abs_diff']:.3g} > --max-diff {cfg.max_diff:g}")
    if parity["agreement"] < cfg.agreement_needed:
        bad.append(f"label agreement {parity['agreement']:.1%} < --min-agreement {cfg.agreement_needed:.1%}")
    return bad


# ---- command ------------------------------------------------------------------------------------------
def run(cfg: ExportConfig) -> dict:
    from bertcls.core.rundir import check_output_dir

    # Before the work: an export may replace an earlier export, never the model it is made from.
    check_output_dir(cfg.export_dir(), "export", overwrite=None, inputs=[("MODEL_DIR", cfg.model_dir)])
    _require_deps()
    import onnx
    import onnxruntime
    import torch
    import transformers

    from bertcls import __version__
    from bertcls.classifier import TextClassifier
    from bertcls.core.batching import batched_logits

    t0 = time.perf_counter()
    clf = TextClassifier.from_pretrained(
        cfg.model_dir, backend="torch", threads=cfg.threads, device="cpu", ensemble=False
    )
    model = clf.model
    hf_config = model.config
    use_tt = "token_type_ids" in inspect.signature(model.forward).parameters

    texts, pairs, source = sample_inputs(cfg, clf)
    encodings = clf.encode(texts, pairs)
    pad_id = clf.tokenizer.pad_token_id if clf.tokenizer.pad_token_id is not None else 0
    check_batch = 8  # small batches of mixed lengths, so the check covers padded rows too
    # The reference is the model exactly as the torch backend runs it (default attention kernel).
    reference = batched_logits(model, encodings, check_batch, pad_id, device="cpu")
    # Eager attention traces to the MatMul/Softmax pattern onnxruntime fuses into one Attention op.
    with contextlib.suppress(Exception):
        model.set_attn_implementation("eager")

    out = cfg.export_dir()
    notes: list[str] = []
    with staged_dir(out) as tmp:
        work = tmp / ".work"
        work.mkdir()
        raw = work / "raw.onnx"
        example = dummy_inputs(encodings, pad_id, int(getattr(hf_config, "type_vocab_size", 1) or 1))
        exporter = trace_to_onnx(model, example, use_tt, raw, cfg.opset)
        try:
            onnx.checker.check_model(str(raw))
        except onnx.checker.ValidationError as e:
            raise UserError(
                f"{cfg.model_dir}: torch.onnx wrote an invalid ONNX graph ({str(e).splitlines()[0]}); "
                f"try another --opset"
            ) from None

        graphs: list[tuple[str, Path]] = []
        optimizer_info: dict = {"ok": False, "skipped": True}
        if cfg.optimize:
            optimizer_info = optimize_graph(raw, work / "optimized.onnx", hf_config)
            if optimizer_info["ok"]:
                graphs.append(("optimized", work / "optimized.onnx"))
            else:
                notes.append(
                    f"graph optimisation failed ({optimizer_info['error']}); kept the unoptimised graph"
                )
        graphs.append(("plain", raw))

        attempts = []
        chosen = None
        for kind, graph in graphs:
            final = graph
            if cfg.quantize == "int8":
                final = work / f"{kind}-int8.onnx"
                try:
                    quantize_int8(graph, final)
                except Exception as e:  # noqa: BLE001 - try the next graph; report why
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    problem = f"int8 quantization failed ({type(e).__name__}: {first})"
                    attempts.append({"graph": kind, "parity": None, "problems": [problem]})
                    notes.append(f"{problem} on the {kind} graph")
                    continue
            # as it will run: a dynamic int8 export per text (onnx_backend.OnnxModel)
            onnx_model = OnnxModel.from_file(final, cfg.threads, {"quantize": cfg.quantize})
            parity = compare(reference, onnx_model.logits(encodings, check_batch, pad_id), clf)
            problems = verdict(parity, cfg)
            attempts.append({"graph": kind, "parity": parity, "problems": problems})
            del onnx_model
            if not problems:
                chosen = (kind, final, parity)
                break
            if kind == "optimized":
                notes.append(
                    f"the optimised graph failed the check ({'; '.join(problems)}); tried the plain graph"
                )
        if chosen is None:
            why = "; ".join(f"{x['graph']} graph: {', '.join(x['problems'])}" for x in attempts)
            if cfg.quantize != "int8":
                hint = "Try --no-optimize or another --opset, or raise --max-diff"
            else:
                hint = "Try without --quantize, or lower --min-agreement if the loss is acceptable"
                if source == GENERATED:  # random-word texts sit at the decision boundary: agreement is noise
                    hint += f"; the sample texts were {GENERATED}: pass --sample-file with real texts"
            raise UserError(
                f"{cfg.model_dir}: the {'int8 ' if cfg.quantize == 'int8' else ''}ONNX export does not match PyTorch "
                f"on {len(texts)} sample texts ({why}); nothing was written. {hint}"
            )
        kind, final, parity = chosen
        shutil.move(str(final), tmp / MODEL_FILE)
        shutil.rmtree(work)
        size = (tmp / MODEL_FILE).stat().st_size
        report = {
            "bertcls_version": __version__,
            "format": cfg.format,
            "quantize": cfg.quantize,
            "file": MODEL_FILE,
            "size_bytes": size,
            "model_dir": str(Path(cfg.model_dir).resolve()),
            "weights": weights_digest(cfg.model_dir),
            "task": clf.meta.get("task"),
            "labels": clf.labels,
            "num_labels": len(clf.labels),
            "inputs": list(INPUTS if use_tt else INPUTS[:2]),
            "output": "logits",
            "dynamic_axes": {"batch": 0, "sequence": 1},
            "opset": cfg.opset if exporter == "torchscript" else max(cfg.opset, 18),
            "exporter": exporter,
            "graph": kind,
            "optimizer": optimizer_info,
            "parity": parity
            | {
                "samples": source,
                "pairs": pairs is not None,
                "tokens_min": min(len(e["input_ids"]) for e in encodings),
                "tokens_max": max(len(e["input_ids"]) for e in encodings),
            },
            "thresholds": {
                "max_diff": cfg.max_diff if cfg.quantize == "none" else None,
                "min_agreement": cfg.agreement_needed,
            },
            "attempts": attempts,
            "notes": notes,
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
            "seconds": round(time.perf_counter() - t0, 2),
        }
        atomic_write_text(tmp / REPORT_FILE, json.dumps(report, indent=2, ensure_ascii=False))
    report["output_dir"] = str(out)
    return report


def summarize(result: dict) -> str:
    buf = io.StringIO()
    p = result["parity"]
    fused = result["optimizer"].get("fused") if result["graph"] == "optimized" else None
    graph = (
        ("optimised: " + ", ".join(f"{k} x{v}" for k, v in fused.items()))
        if fused
        else result["graph"] + " graph"
    )
    kind = "int8" if result["quantize"] == "int8" else "fp32"
    print(
        f"exported {Path(result['output_dir']) / result['file']} ({kind}, {graph}; "
        f"{result['size_bytes'] / 1e6:.1f} MB, {result['seconds']:.1f} s)",
        file=buf,
    )
    for note in result["notes"]:
        print(f"note: {note}", file=buf)
    limits = result["thresholds"]
    limit_diff = f" (limit {limits['max_diff']:g})" if limits["max_diff"] is not None else ""
    print(
        f"parity vs PyTorch on {p['n']} texts ({p['samples']}): max |logit diff| {p['max_abs_diff']:.3g}"
        f"{limit_diff}, label agreement {p['agreement']:.1%} (limit {limits['min_agreement']:.0%})",
        file=buf,
    )
    print(f"report: {Path(result['output_dir']) / REPORT_FILE}", file=buf)
    return buf.getvalue().rstrip()
