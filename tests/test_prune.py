"""`bertcls prune`: feed-forward neurons removed by importance give a smaller dense BERT that plain
transformers loads, equal to the original with those neurons masked; one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bertcls.cli import main


def prune_args(source, files, out, *extra):
    return [
        "prune", "--source", str(source), "--train-file", str(files["train"]),
        "--validation-file", str(files["dev"]), "--test-file", str(files["test"]), "--output-dir", str(out),
        "--epochs", "1", "--batch-size", "16", "--learning-rate", "3e-3", "--max-length", "32", *extra,
    ]  # fmt: skip


def _batch(model_dir, texts):
    from bertcls.core.models import load_tokenizer

    return load_tokenizer(model_dir)(texts, padding=True, return_tensors="pt")


def test_pruned_model_equals_the_original_with_neurons_masked(trained_tiny, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from bertcls.compress.prune import ffn_layers, prune_ffn

    model = AutoModelForSequenceClassification.from_pretrained(trained_tiny).eval()
    rng = np.random.default_rng(0)
    n = model.config.intermediate_size
    keep = [rng.choice(n, size=n // 4, replace=False) for _ in ffn_layers(model)]
    pruned = prune_ffn(model, keep)
    pruned.save_pretrained(tmp_path / "p")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "p").eval()  # plain transformers
    assert reloaded.config.intermediate_size == n // 4
    assert sum(p.numel() for p in reloaded.parameters()) < sum(p.numel() for p in model.parameters())

    def mask(i):
        m = torch.zeros(n)
        m[torch.as_tensor(keep[i])] = 1
        return lambda _mod, _inp, out: out * m

    handles = [layer.intermediate.register_forward_hook(mask(i)) for i, layer in enumerate(ffn_layers(model))]
    batch = _batch(trained_tiny, ["good great film", "awful boring plot so dull"])
    with torch.no_grad():
        masked = model(**batch).logits
        ours = reloaded(**batch).logits
    for h in handles:
        h.remove()
    torch.testing.assert_close(ours, masked, atol=1e-5, rtol=1e-5)


def test_importance_ranks_a_dead_neuron_last(trained_tiny, sentiment_files):
    from transformers import AutoModelForSequenceClassification

    from bertcls.compress.prune import PruneConfig, ffn_layers, importance_batches, neuron_importance
    from bertcls.core.models import load_tokenizer

    model = AutoModelForSequenceClassification.from_pretrained(trained_tiny)
    with torch.no_grad():
        ffn_layers(model)[0].output.dense.weight[:, 5] = 0  # neuron 5 of layer 0 feeds nothing
    cfg = PruneConfig(
        source=str(trained_tiny), train_file=str(sentiment_files["train"]), max_length=32, batch_size=16
    )
    scores = neuron_importance(model, importance_batches(cfg, load_tokenizer(trained_tiny), model))
    assert len(scores) == model.config.num_hidden_layers and (scores[0] >= 0).all()
    assert scores[0][5] == 0 and scores[0].max() > 0


def test_prune_cli_writes_a_smaller_model(trained_tiny, sentiment_files, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "pruned"
    assert main(prune_args(trained_tiny, sentiment_files, out, "--target-sparsity", "0.75")) == 0
    assert "pruned 48 of 64 feed-forward neurons per layer" in capsys.readouterr().out
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.intermediate_size == 16
    info = json.loads((out / "bertcls.json").read_text())["pruning"]
    assert info["ffn_neurons"] == [64, 16] and info["encoder_flops_ratio"] < 1
    assert info["parameters"][1] < info["parameters"][0] and "## Pruning" in (out / "README.md").read_text()
    import yaml

    assert yaml.safe_load((out / "prune_config.yaml").read_text())["target_sparsity"] == 0.75


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target-sparsity", "0"], "--target-sparsity=0.0 is invalid: must be in (0, 1)"),
        (["--target-sparsity", "1"], "--target-sparsity=1.0 is invalid"),
        (["--multi-label"], "match --multi-label"),
        (["--method", "setfit"], "--method='setfit' is invalid: the recovery after pruning is fine-tuning"),
    ],
)
def test_bad_prune_options(trained_tiny, sentiment_files, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(prune_args(trained_tiny, sentiment_files, out, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_refuses_a_model_that_is_not_a_classifier(tiny_bert, sentiment_files, tmp_path, capsys):
    assert main(prune_args(tiny_bert, sentiment_files, tmp_path / "bad")) == 2
    assert "classifier" in capsys.readouterr().err and not (tmp_path / "bad").exists()
