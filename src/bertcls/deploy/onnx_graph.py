"""The ONNX graph steps of ``bertcls export``: trace a classifier to ONNX, fuse BERT operators with
onnxruntime's transformer optimizer, quantize the weights to int8. ``deploy/export.py`` runs them and
checks the result against PyTorch."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from bertcls.core.errors import UserError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def dummy_inputs(encodings: list[dict], pad_id: int, type_vocab_size: int) -> tuple:
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
