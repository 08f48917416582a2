"""``bertcls prune RUN_DIR --target-sparsity 0.5 --train-file ...``: structured pruning of the feed-forward
neurons, then a short recovery fine-tune (optionally distilled from the unpruned model).

Why neurons and not attention heads: transformers 5 removed ``prune_heads``/``pruned_heads``, and a BERT
config has one head count and one head size for every layer, so a model with heads removed no longer
loads in plain transformers. Feed-forward neurons can go: the same number is kept in every layer, and
the result is a dense ``BertForSequenceClassification`` with a smaller ``intermediate_size``. The
feed-forward block is two thirds of a BERT layer's weight FLOPs, so 60% of its neurons is 40% of them.

Reads top to bottom: setup (the model; importance of every neuron, first-order Taylor |a * dL/da| summed
over training batches, Molchanov et al. 2017 as Michel et al. 2019 use it for heads; the top neurons
kept per layer), loop (`bertcls train`'s loop on the pruned model, with ``--distill`` the unpruned
model's soft targets), save (a normal run directory; bertcls.json and the model card record the source,
the sparsity and the FLOPs).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bertcls.compress.distill import RESUME_HINT
from bertcls.core.config import require
from bertcls.core.errors import UserError
from bertcls.core.rundir import restart_hint
from bertcls.train.config import TrainConfig

log = logging.getLogger("bertcls")


@dataclass
class PruneConfig(TrainConfig):
    source: str | None = None
    """The trained classifier to prune (a bertcls run directory)."""
    target_sparsity: float = 0.5
    """Fraction of the feed-forward neurons to remove, the same in every layer (0 < s < 1)."""
    importance_batches: int = 32
    """Training batches whose gradients score the neurons."""
    distill: bool = True
    """Recover with the unpruned model's soft targets as well as the labels (--no-distill: labels only)."""
    temperature: float = 2.0
    """With --distill: the soft targets' temperature."""
    alpha: float = 0.5
    """With --distill: the soft-target loss's weight (1 - alpha on the labels)."""

    def __post_init__(self) -> None:
        require(
            bool(self.source), "source", self.source, "give the trained model to prune (--source RUN_DIR)"
        )
        require(
            0 < self.target_sparsity < 1,
            "target_sparsity",
            self.target_sparsity,
            "must be in (0, 1), e.g. 0.5",
        )
        require(self.importance_batches >= 1, "importance_batches", self.importance_batches, "must be >= 1")
        require(not self.resume, "resume", self.resume, RESUME_HINT)
        require(self.method == "finetune", "method", self.method, "the recovery after pruning is fine-tuning")
        self.model = self.source
        super().__post_init__()


def ffn_layers(model) -> list:
    """The encoder layers with a BERT-shaped feed-forward block (intermediate.dense, output.dense)."""
    encoder = getattr(getattr(model, model.base_model_prefix, model), "encoder", None)
    layers = list(getattr(encoder, "layer", []))
    if not layers or not all(hasattr(x, "intermediate") and hasattr(x, "output") for x in layers):
        raise UserError(f"--source: {type(model).__name__} has no BERT-shaped feed-forward blocks to prune")
    return layers


def neuron_importance(model, batches) -> list[np.ndarray]:
    """Per layer, per neuron: |sum over tokens of activation * d loss / d activation| over ``batches``."""
    layers = ffn_layers(model)
    acts: list = [None] * len(layers)
    scores = [torch.zeros(x.intermediate.dense.out_features) for x in layers]

    def keep(i):
        def hook(_module, _inputs, out):
            out.retain_grad()
            acts[i] = out

        return hook

    handles = [x.intermediate.register_forward_hook(keep(i)) for i, x in enumerate(layers)]
    model.eval()  # no dropout: the same network that will be pruned
    try:
        for batch in batches:
            labels = batch.pop("labels")
            logits = model(**batch).logits
            if model.config.problem_type == "multi_label_classification":
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
            else:
                loss = torch.nn.functional.cross_entropy(logits, labels)
            model.zero_grad()
            loss.backward()
            for i, a in enumerate(acts):
                scores[i] += (a * a.grad).sum(dim=(0, 1)).abs().detach()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad()
    return [s.numpy() for s in scores]


def prune_ffn(model, keep: list[np.ndarray]):
    """A copy of ``model`` whose layer l keeps only the neurons ``keep[l]`` (same count in every layer)."""
    sizes = {len(k) for k in keep}
    assert len(sizes) == 1, "the same number of neurons in every layer"
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.intermediate_size = sizes.pop()
    pruned = model.__class__(config)
    state, target = model.state_dict(), pruned.state_dict()
    # everything outside the feed-forward blocks keeps its shape: copied as is
    pruned.load_state_dict(
        {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}, strict=False
    )
    for i, (src, dst) in enumerate(zip(ffn_layers(model), ffn_layers(pruned))):
        idx = torch.as_tensor(np.sort(keep[i]), dtype=torch.long)
        with torch.no_grad():
            dst.intermediate.dense.weight.copy_(src.intermediate.dense.weight[idx])
            dst.intermediate.dense.bias.copy_(src.intermediate.dense.bias[idx])
            dst.output.dense.weight.copy_(src.output.dense.weight[:, idx])
    return pruned.eval()


def encoder_flops(config, tokens: int = 128) -> float:
    """Multiply-adds x 2 per sequence of ``tokens`` in the encoder's layers: Q, K, V, output projections
    (4 h^2), attention scores and mixing (2 t h), the feed-forward block (2 h f)."""
    h, f, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return 2.0 * n * tokens * (4 * h * h + 2 * tokens * h + 2 * h * f)


# ---------------------------------------------------------------------------------------------------- run
def run(cfg: PruneConfig) -> dict:
    from transformers import AutoModelForSequenceClassification

    from bertcls.compress.distill import Distillation
    from bertcls.core.models import check_model_dir, is_sentence_classifier, load_tokenizer, read_meta
    from bertcls.train.config import train_config
    from bertcls.train.train import run as train_run

    # ---- setup: score and remove neurons
    config = check_model_dir(cfg.source, need_classifier=True)
    meta = read_meta(cfg.source) or {}
    if (meta.get("task") == "multi_label") != cfg.multi_label:
        raise UserError(f"--source={cfg.source}: the model's task is {meta.get('task')}; match --multi-label")
    if is_sentence_classifier(cfg.source, meta):  # loaded as a classifier it would get a random head
        every = ",".join(map(str, range(config.get("num_hidden_layers", 6))))  # all its layers
        raise UserError(
            f"--source={cfg.source} is a SetFit (sentence-embedding) model: prune a fine-tuned classifier; "
            f"distil it into one first (bertcls distill --teacher {cfg.source} --student-layers {every} ...)"
        )
    original = AutoModelForSequenceClassification.from_pretrained(cfg.source)
    tokenizer = load_tokenizer(cfg.source)
    scores = neuron_importance(original, importance_batches(cfg, tokenizer, original))
    n = len(scores[0])
    k = max(1, int(round(n * (1 - cfg.target_sparsity))))
    keep = [np.argsort(-s)[:k] for s in scores]
    pruned = prune_ffn(original, keep)
    before, after = encoder_flops(original.config), encoder_flops(pruned.config)
    log.info("kept %d of %d feed-forward neurons per layer: encoder FLOPs x%.2f", k, n, after / before)
    # ---- loop: recovery fine-tune (train's loop), optionally taught by the unpruned model
    with tempfile.TemporaryDirectory(prefix="bertcls-pruned-") as tmp:
        pruned.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        teacher = Distillation(cfg, original.eval(), []) if cfg.distill else None
        with restart_hint("prune", RESUME_HINT):
            result = train_run(train_config(cfg, model=tmp), distill=teacher)
    # ---- save
    info = {
        "source": str(cfg.source),
        "target_sparsity": cfg.target_sparsity,
        "ffn_neurons": [n, k],
        "encoder_flops_ratio": after / before,
        "parameters": [
            sum(p.numel() for p in original.parameters()),
            sum(p.numel() for p in pruned.parameters()),
        ],
        "recovery": "labels + distillation from the unpruned model" if cfg.distill else "labels",
        "source_metrics": meta.get("metrics", {}),
    }
    from bertcls.core.config import save_yaml

    # the command's resolved options (run_config.yaml is the inner train run's, on a temporary model)
    save_yaml(cfg, Path(result["output_dir"]) / "prune_config.yaml")
    return record(result, info)


def importance_batches(cfg: PruneConfig, tokenizer, model):
    """Up to --importance-batches shuffled training batches (labels as ids or 0/1 vectors)."""
    from bertcls.core.batching import Collator
    from bertcls.core.longtext import encode_long
    from bertcls.core.scoring import label_targets
    from bertcls.train.prepare import load_splits

    train = load_splits(cfg).train
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if unknown := sorted(train.label_set() - set(labels)):
        raise UserError(f"--train-file: labels {unknown} are not the model's ({labels})")
    enc = encode_long(tokenizer, train.texts, train.pairs, cfg.max_length, cfg.long_text_spec())
    targets = label_targets(train, labels, cfg.multi_label)
    order = np.random.default_rng(cfg.seed).permutation(len(enc))
    collate = Collator(tokenizer.pad_token_id, cfg.multi_label)
    for b in range(min(cfg.importance_batches, -(-len(enc) // cfg.batch_size))):
        picked = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        rows = [
            {k: v for k, v in enc[i].items() if k != "doc"} | {"labels": targets[enc[i]["doc"]]}
            for i in picked
        ]
        yield collate(rows)


def record(result: dict, info: dict) -> dict:
    from bertcls.core.cards import annotate_run

    n, k = info["ffn_neurons"]
    annotate_run(
        Path(result["output_dir"]),
        "pruning",
        info,
        f"""
## Pruning

Pruned from `{info["source"]}`: {n - k} of {n} feed-forward neurons removed in every layer (target sparsity
{info["target_sparsity"]}; importance |activation x gradient| on training batches), then recovered with
{info["recovery"]}. Encoder FLOPs x{info["encoder_flops_ratio"]:.2f}; parameters {info["parameters"][0]:,} ->
{info["parameters"][1]:,}. A dense `BertForSequenceClassification` (`intermediate_size` {k}) that plain transformers loads.
""",
    )
    result["pruning"] = info
    return result


def summarize(result: dict) -> str:
    from bertcls.train.train import summarize as train_summary

    p = result["pruning"]
    n, k = p["ffn_neurons"]
    head = (
        f"pruned {n - k} of {n} feed-forward neurons per layer: encoder FLOPs x{p['encoder_flops_ratio']:.2f}"
    )
    return head + "\n" + train_summary(result)
