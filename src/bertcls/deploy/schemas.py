"""The HTTP API's request/response models and the checks a classify request passes before it is queued.

Every rejection is a 4xx with a one-line ``detail`` that names the field (and index) and says what to
send instead. Text the tokenizer cannot take (a lone surrogate, which JSON can carry as ``"\\ud800"``) is
refused here, so it never reaches a micro-batch shared with other clients' texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

EXAMPLE = {"texts": ["a gorgeous, moving film", "two hours I will never get back"], "top_k": 2}
NOT_JSON = (
    'the request body is not valid JSON; send {"texts": ["..."], "top_k": 1} '
    "with Content-Type: application/json"
)


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})
    texts: list[str] = Field(description="Texts to classify (limits: GET /v1/model, 'limits').")
    text_pairs: list[str] | None = Field(
        None, description="Second texts, one per text (only for models trained on text pairs)."
    )
    top_k: int = Field(1, ge=0, description="Labels with scores to return per text, best first; 0 = all.")


class ExplainRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": ["a gorgeous, moving film"], "method": "ig"}]},
    )
    texts: list[str] = Field(description="Texts to explain (same limits as /v1/classify).")
    text_pairs: list[str] | None = Field(None, description="Second texts, one per text (pair models only).")
    method: Literal["ig", "occlusion"] | None = Field(
        None,
        description="ig = Integrated Gradients (torch backend), occlusion = leave-one-word-out (any backend); "
        "default: ig on torch, occlusion on ONNX.",
    )
    target: str | None = Field(None, description="Label to explain (default: the predicted one(s)).")


class Word(BaseModel):
    text: str
    start: int = Field(description="Character offset in its text (segment 0) or text pair (segment 1).")
    end: int
    segment: int


class Attribution(BaseModel):
    label: str
    probability: float
    scores: list[float] = Field(description="One score per word; > 0 pushes towards the label.")
    completeness_error: float | None = None


class Explanation(BaseModel):
    text: str
    pair: str | None
    method: str
    prediction: str | list[str]
    probabilities: dict[str, float]
    words: list[Word]
    targets: list[Attribution]
    truncated: bool
    seconds: float
    note: str


class ExplainResponse(BaseModel):
    model: str
    explanations: list[Explanation]


class LabelScore(BaseModel):
    label: str
    score: float


class Result(BaseModel):
    label: str | list[str] = Field(
        description="The predicted label (a list of labels for multi-label models)."
    )
    score: float | None = Field(
        description="Probability of the predicted label (multi-label: the highest "
        "among the predicted labels; null if none)."
    )
    top_k: list[LabelScore] = Field(description="The top_k labels with their probabilities, best first.")
    chunks: int = Field(
        1, description="Windows the text was read in (more than 1 only for models using --long-text chunks)."
    )


class ClassifyResponse(BaseModel):
    model: str
    results: list[Result]


class Rejected(Exception):
    """A request the service refuses: HTTP ``status`` with a one-line ``detail``."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_texts: int
    max_chars: int


def check_explain(
    req: ExplainRequest, limits: Limits, pair_model: bool, labels: list[str], backend: str
) -> str:
    """The classify checks, then the label and the method; returns the method to use."""
    check_classify(req, limits, pair_model)
    if req.target is not None and req.target not in labels:
        raise Rejected(422, f"target {req.target!r} is not a label of this model; its labels: {labels}")
    if req.method == "ig" and backend != "torch":
        raise Rejected(422, "method 'ig' needs gradients and this server runs ONNX; send method 'occlusion'")
    from bertcls.analysis.attribution import default_method

    return req.method or default_method(backend)


def check_classify(req: ClassifyRequest | ExplainRequest, limits: Limits, pair_model: bool) -> None:
    """Raise :class:`Rejected` for the first problem of a (type-valid) classify request."""
    n = len(req.texts)
    if n == 0:
        raise Rejected(422, "texts is empty; send at least one text")
    if n > limits.max_texts:
        raise Rejected(
            413,
            f"{n} texts in one request; the limit is {limits.max_texts}; split them over several requests",
        )
    fields = (("texts", req.texts), ("text_pairs", req.text_pairs or []))
    for name, values in fields:
        for i, t in enumerate(values):
            if len(t) > limits.max_chars:
                raise Rejected(413, f"{name}[{i}] has {len(t)} characters; the limit is {limits.max_chars}")
    for i, t in enumerate(req.texts):
        if not t.strip():
            raise Rejected(422, f"texts[{i}] is empty; every text needs some words")
    for name, values in fields:
        for i, t in enumerate(values):
            _check_unicode(name, i, t)
    if req.text_pairs is not None and len(req.text_pairs) != n:
        raise Rejected(422, f"{n} texts but {len(req.text_pairs)} text_pairs; give one pair per text")
    if pair_model and req.text_pairs is None:
        raise Rejected(422, "this model classifies text pairs; send text_pairs, one per text")
    if not pair_model and req.text_pairs is not None:
        raise Rejected(422, "this model reads single texts; leave out text_pairs")


def _check_unicode(name: str, i: int, text: str) -> None:
    """Lone surrogates (U+D800-U+DFFF unpaired) are not text: UTF-8 cannot encode them and the
    tokenizer raises on them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise Rejected(
            422,
            f"{name}[{i}] has a lone surrogate (U+{ord(text[e.start]):04X}) at character {e.start}, "
            "which is not valid Unicode; send well-formed text (an astral character needs both "
            "halves of its surrogate pair)",
        ) from None


def where(loc: Sequence[Any]) -> str:
    """('body', 'texts', 0) -> 'texts[0]'."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_error(errors: Sequence[dict]) -> tuple[int, dict]:
    """Status and JSON body for FastAPI's RequestValidationError ``errors``."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, {"detail": NOT_JSON}
    detail = "; ".join(f"{where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)
    # Only where/what/why: echoing the input back could return megabytes of text.
    slim = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    return 422, {"detail": detail, "errors": slim}


def results(
    probs: np.ndarray,
    chosen: Sequence[Any],
    labels: list[str],
    top_k: int,
    chunks: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """One result per row of ``probs``: the decided label(s), its score, the top_k labels and how many
    windows the text was read in."""
    k = len(labels) if top_k == 0 else min(top_k, len(labels))
    out = []
    chunks = chunks or [1] * len(probs)
    for p, lab, n in zip(probs, chosen, chunks):
        top = np.argsort(-p, kind="stable")[:k]
        if isinstance(lab, list):
            score = max((float(p[labels.index(x)]) for x in lab), default=None)
        else:
            score = float(p[labels.index(lab)])
        out.append(
            {
                "label": lab,
                "score": None if score is None else round(score, 6),
                "top_k": [{"label": labels[j], "score": round(float(p[j]), 6)} for j in top],
                "chunks": int(n),
            }
        )
    return out
