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
import logging
import random
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bertcls.core.config import POSITIONAL, require
from bertcls.core.errors import UserError, require_extra
from bertcls.core.io import atomic_write_text, staged_dir
from bertcls.deploy.onnx_backend import MODEL_FILE, REPORT_FILE, OnnxModel, weights_digest

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


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


def sample_inputs(cfg: ExportConfig, clf: Any) -> tuple[list[str], list[str] | None, str]:
    if cfg.sample_file:
        texts, pairs = file_texts(cfg.sample_file, clf.meta, cfg.num_samples)
        return texts, pairs, cfg.sample_file
    texts = vocab_texts(clf.tokenizer, cfg.num_samples, clf.max_length, cfg.seed)
    pairs = None
    if clf.meta.get("text_pair_column"):  # a pair model: check the second segment too
        pairs = vocab_texts(clf.tokenizer, cfg.num_samples, max(clf.max_length // 2, 1), cfg.seed + 1)
    return texts, pairs, "generated from the vocabulary"


# ---- export steps -------------------------------------------------------------------------------------
def _dummy_inputs(encodings: list[dict], pad_id: int, type_vocab_size: int) -> tuple:
    """Two padded rows taken from real encodings. The tracer records one path through the model, so the
    example must contain padding (a mask that is all ones lets transformers skip building the mask) and
    a second segment where the model has one."""
    from bertcls.core.batching import Collator

    enc = sorted(encodings, key=lambda e: len(e["input_ids"]))
    longest = enc[-1]
    short = next((e for e in enc if 2 <= len(e["input_ids"]) < len(longest["input_ids"])), None)
    if short is None or len(longest["input_ids"]) < 4:
        ids = list(range(4, 4 + 16))
        longest = {"input_ids": ids, "token_type_ids": [0] * 16}
        short = {"input_ids": ids[:5], "token_type_ids": [0] * 5}
    batch = Collator(pad_id)([dict(longest), dict(short)])
    tt = batch["token_type_ids"].clone()
    if type_vocab_size >= 2:
        width = tt.shape[1]
        tt[0, width // 2 :] = 1
    return batch["input_ids"], batch["attention_mask"], tt


def trace_to_onnx(model: Any, example: tuple, use_tt: bool, path: Path, opset: int) -> str:
    """Write ``path``; returns which torch exporter did it.

    The TorchScript exporter comes first: onnxruntime's BERT fusions (Attention, EmbedLayerNormalization)
    match its graphs, which makes the optimised model markedly faster on CPU; the dynamo exporter's graphs
    run correctly but fuse less. Dynamo is the fallback for models or torch versions the tracer can't do."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kw = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **kw).logits

    wrapped = Logits(model).eval()
    names = list(INPUTS if use_tt else INPUTS[:2])
    args = example if use_tt else example[:2]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    errors = []
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter; correctness is checked afterwards
        try:
            torch.onnx.export(
                wrapped,
                args,
                str(path),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
            return "torchscript"
        except Exception as e:  # noqa: BLE001 - any tracer failure: try the other exporter
            errors.append(
                f"torchscript: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
            )
        try:
            batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
            shapes = {n: {0: batch, 1: seq} for n in names}
            # The dynamo exporter reports progress with print(); keep stdout for the command's summary.
            with contextlib.redirect_stdout(sys.stderr):
                torch.onnx.export(
                    wrapped,
                    tuple(args),
                    str(path),
                    input_names=names,
                    output_names=["logits"],
                    dynamic_shapes=shapes,
                    opset_version=max(opset, 18),
                    dynamo=True,
                    external_data=False,
                )
            return "dynamo"
        except Exception as e:  # noqa: BLE001
            errors.append(f"dynamo: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
    raise UserError(
        f"torch.onnx could not export this model ({'; '.join(errors)}); "
        f"the architecture may not be exportable with torch {torch.__version__}"
    )


def optimize_graph(src: Path, dst: Path, hf_config: Any) -> dict:
    """onnxruntime's BERT fusions, with the head count and width from the model's config. Returns what
    was fused, or the error (the caller then keeps the plain graph)."""
    try:
        from onnxruntime.transformers import optimizer

        # The optimizer logs every pattern it looks at; only its result matters here.
        logging.disable(logging.WARNING)
        try:
            opt = optimizer.optimize_model(
                str(src),
                model_type="bert",
                num_heads=int(getattr(hf_config, "num_attention_heads", 0) or 0),
                hidden_size=int(getattr(hf_config, "hidden_size", 0) or 0),
            )
            fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
            opt.save_model_to_file(str(dst))
        finally:
            logging.disable(logging.NOTSET)
        return {"ok": True, "fused": fused}
    except Exception as e:  # noqa: BLE001 - the optimizer is best effort by design
        return {
            "ok": False,
            "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
        }


def quantize_int8(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)
    try:
        # Dynamic quantization: int8 weights, activations quantized per batch at run time (no calibration
        # data needed). Per-channel scales and 7-bit weight range (reduce_range) roughly halved MiniLM's
        # logit error against per-tensor 8-bit in our checks; reduce_range also avoids the u8*s8 overflow
        # of AVX2 CPUs without VNNI. ONNX shape inference cannot type the outputs of the fused contrib ops
        # (Attention, ...); they are all float, which DefaultTensorType tells the quantizer.
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(logging.NOTSET)


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
        example = _dummy_inputs(encodings, pad_id, int(getattr(hf_config, "type_vocab_size", 1) or 1))
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
            onnx_model = OnnxModel.from_file(final, cfg.threads)
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
            raise UserError(
                f"{cfg.model_dir}: the {'int8 ' if cfg.quantize == 'int8' else ''}ONNX export does not match PyTorch "
                f"on {len(texts)} sample texts ({why}); nothing was written. "
                + (
                    "Try without --quantize, or lower --min-agreement if the loss is acceptable"
                    if cfg.quantize == "int8"
                    else "Try --no-optimize or another --opset, or raise --max-diff"
                )
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
