"""A sentence-embedding classifier (what `bertcls train --method setfit` produces) as one torch module.

SetFit's model is a sentence-transformers encoder (mean pooling, often normalised) and a scikit-learn
logistic regression on the embeddings. BERT's sequence-classification head reads the [CLS] token instead,
and measured on SST-2 with 8 examples per class the [CLS]/pooler features lose several points against
mean pooling (bench/fewshot_pooling.py; README "Few-shot"), so the model cannot be folded into ``BertForSequenceClassification``
without losing what makes it work. This module is that model, written by hand because neither library
has it as a torch module: encoder, pooling, normalisation and the regression as a ``classifier`` linear
layer, exact to the fitted scikit-learn head (softmax of ``[0, z]`` is the binary regression's
probability). Its ``logits`` output is what every bertcls backend reads (scoring, calibration, ONNX).

On disk the directory is a standard sentence-transformers model (``SentenceTransformer(dir)`` loads the
encoder with its pooling) plus ``head.safetensors``; bertcls.json says ``"architecture": "sentence"``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from bertcls.core.errors import UserError

HEAD_FILE = "head.safetensors"
ARCHITECTURE = "sentence"  # bertcls.json "architecture" of these directories
POOLING_DIR, NORMALIZE_DIR = "1_Pooling", "2_Normalize"


class SentenceClassifier(torch.nn.Module):
    def __init__(
        self, encoder, classifier: torch.nn.Linear, pooling: str, normalize: bool, labels: list[str]
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise UserError(f"sentence model pooling {pooling!r} is not supported: use mean or cls")
        self.encoder, self.classifier = encoder, classifier
        self.pooling, self.normalize = pooling, normalize
        # What the scoring and export code reads from a Hugging Face classifier's config. A copy: the
        # encoder's own config.json must not name labels, or AutoModelForSequenceClassification would load
        # the directory as a classifier with real label names and a random head.
        self.config = copy.deepcopy(encoder.config)
        self.config.num_labels = len(labels)
        self.config.id2label = dict(enumerate(labels))
        self.config.label2id = {lab: i for i, lab in enumerate(labels)}

    def bertcls_meta(self) -> dict:
        """What bertcls.json adds for this model: core.models.load_trained loads it by this."""
        return {"architecture": ARCHITECTURE, "pooling": self.pooling, "normalize": self.normalize}

    def embed(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """The sentence embedding sentence-transformers computes for these inputs."""
        kw = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.encoder.get_input_embeddings()  # what explain's integrated gradients attribute to

    def set_attn_implementation(self, impl: str) -> None:
        self.encoder.set_attn_implementation(impl)  # export traces eager attention, which onnxruntime fuses

    def forward(self, input_ids, attention_mask, token_type_ids=None, **_):
        return SimpleNamespace(logits=self.classifier(self.embed(input_ids, attention_mask, token_type_ids)))

    # ---- files ------------------------------------------------------------------------------------
    def save_pretrained(self, path, safe_serialization: bool = True) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        self.encoder.save_pretrained(path, safe_serialization=True)
        head = {k: v.detach().cpu().contiguous() for k, v in self.classifier.state_dict().items()}
        save_file(head, str(path / HEAD_FILE))
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"}]  # fmt: skip
        if self.normalize:
            modules.append(
                {
                    "idx": 2,
                    "name": "2",
                    "path": NORMALIZE_DIR,
                    "type": "sentence_transformers.models.Normalize",
                }
            )
            (path / NORMALIZE_DIR).mkdir(exist_ok=True)
        (path / "modules.json").write_text(json.dumps(modules, indent=2))
        (path / POOLING_DIR).mkdir(exist_ok=True)
        pooling = {"word_embedding_dimension": self.config.hidden_size,
                   "pooling_mode_cls_token": self.pooling == "cls", "pooling_mode_mean_tokens": self.pooling == "mean"}  # fmt: skip
        (path / POOLING_DIR / "config.json").write_text(json.dumps(pooling, indent=2))
        max_len = int(getattr(self.config, "max_position_embeddings", 512))
        (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": min(max_len, 512)}))

    @classmethod
    def from_pretrained(cls, path, labels: list[str]) -> SentenceClassifier:
        """``labels``: bertcls.json's, which the caller (core.models.load_trained) has read."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        path = Path(path)
        if not (path / HEAD_FILE).is_file():
            raise UserError(f"{path}: no {HEAD_FILE}; the directory is incomplete — re-run training")
        pooling, normalize = read_pooling(path)
        head = load_file(str(path / HEAD_FILE))
        weight = head["weight"]
        classifier = torch.nn.Linear(weight.shape[1], weight.shape[0])
        classifier.load_state_dict(head)
        return cls(AutoModel.from_pretrained(path), classifier, pooling, normalize, list(labels)).eval()


def read_pooling(path: Path) -> tuple[str, bool]:
    """The pooling mode and normalisation a sentence-transformers directory declares (mean if unsaid, as
    sentence-transformers itself does for a plain encoder)."""
    modules = json.loads((path / "modules.json").read_text()) if (path / "modules.json").is_file() else []
    normalize = any(m["type"].endswith("Normalize") for m in modules)
    pool = next((m for m in modules if m["type"].endswith("Pooling")), None)
    if pool is None:
        return "mean", normalize
    cfg = json.loads((path / pool["path"] / "config.json").read_text())
    if cfg.get("pooling_mode") in ("mean", "cls"):  # sentence-transformers 6 writes the mode by name
        return cfg["pooling_mode"], normalize
    if cfg.get("pooling_mode_cls_token"):
        return "cls", normalize
    if cfg.get("pooling_mode_mean_tokens", True):
        return "mean", normalize
    raise UserError(f"{path}: pooling other than mean or [CLS] is not supported for few-shot training")


def head_as_linear(head, n_labels: int) -> torch.nn.Linear:
    """Either head setfit fits (a scikit-learn estimator or its differentiable ``SetFitHead``) as a linear
    layer with the same probabilities."""
    if isinstance(head, torch.nn.Module):
        return head_from_setfit(head)
    return head_from_sklearn(head, n_labels)


def head_from_setfit(head) -> torch.nn.Linear:
    """setfit's differentiable head computes ``linear(x) / (temperature + eps)``, then softmax (sigmoid
    for multi-label); folding the division into the weights gives the same logits from a plain layer."""
    scale = 1.0 / (head.temperature + head.eps)
    inner = head.linear
    layer = torch.nn.Linear(inner.in_features, inner.out_features)
    with torch.no_grad():
        layer.weight.copy_(inner.weight.float() * scale)
        layer.bias.copy_(inner.bias.float() * scale if inner.bias is not None else 0.0)
    return layer


def head_from_sklearn(estimator, n_labels: int) -> torch.nn.Linear:
    """The fitted logistic regression (or one-vs-rest regressions for multi-label) as a linear layer whose
    softmax (sigmoid for multi-label) equals the estimator's predict_proba."""
    ests = getattr(estimator, "estimators_", None)
    if ests is not None:  # OneVsRestClassifier / MultiOutputClassifier: one binary regression per label
        coef = np.concatenate([e.coef_ for e in ests])
        bias = np.concatenate([e.intercept_ for e in ests])
    elif estimator.coef_.shape[0] == 1 and n_labels == 2:  # binary: p(1) = sigmoid(z) = softmax([0, z])
        coef = np.concatenate([np.zeros_like(estimator.coef_), estimator.coef_])
        bias = np.concatenate([[0.0], estimator.intercept_])
    else:
        coef, bias = estimator.coef_, estimator.intercept_
    layer = torch.nn.Linear(coef.shape[1], coef.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return layer
