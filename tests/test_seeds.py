"""`bertcls train --seeds`: one run per seed, summarised as mean, std and 95% interval; the best by
validation is the model at the top, the others in seeds/; nothing replaced until every seed is done."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import train_args

from bertcls.cli import main


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory, tiny_bert, sentiment_files):
    out = tmp_path_factory.mktemp("seeds") / "run"
    args = train_args(tiny_bert, sentiment_files, out, "--seeds", "3,1,2", "--epochs", "1", "--ensemble")
    assert main(args) == 0
    return out


def test_summary_equals_numpy_over_the_seed_runs(seeds_run):
    s = json.loads((seeds_run / "seeds_summary.json").read_text())
    assert s["seeds"] == [3, 1, 2]
    runs = {k: json.loads((seeds_run / p / "metrics.json").read_text()) for k, p in s["runs"].items()}
    for split in ("validation", "test"):
        for key in ("accuracy", "f1_macro", "loss"):
            v = np.array([runs[str(k)][split][key] for k in s["seeds"]])
            got = s["summary"][f"model/{split}"][key]
            assert got["values"] == pytest.approx(v.tolist())
            assert got["mean"] == pytest.approx(v.mean()) and got["std"] == pytest.approx(v.std(ddof=1))
            lo, hi = got["ci95"]
            assert lo <= got["mean"] <= hi and hi - lo == pytest.approx(
                2 * 4.302653 * v.std(ddof=1) / np.sqrt(3)
            )
    ens = [runs[str(k)]["ensemble"]["test"]["accuracy"] for k in s["seeds"]]
    assert s["summary"]["ensemble/test"]["accuracy"]["mean"] == pytest.approx(np.mean(ens))


def test_best_seed_is_the_model_and_the_others_are_kept(seeds_run):
    from bertcls import TextClassifier

    s = json.loads((seeds_run / "seeds_summary.json").read_text())
    val = {
        k: json.loads((seeds_run / p / "metrics.json").read_text())["validation"]["f1_macro"]
        for k, p in s["runs"].items()
    }
    assert val[str(s["best_seed"])] == max(val.values())
    assert s["runs"][str(s["best_seed"])] == "."
    others = sorted(p.name for p in (seeds_run / "seeds").iterdir())
    assert others == sorted(f"seed-{k}" for k in s["seeds"] if k != s["best_seed"])
    for d in [seeds_run, *(seeds_run / "seeds").iterdir()]:
        assert TextClassifier.from_pretrained(d).predict("good great film") in ("positive", "negative")
        # paths inside the runs name where they ended up, not the staging directory
        assert (
            ".tmp" not in (d / "README.md").read_text() and ".tmp" not in (d / "run_config.yaml").read_text()
        )
    card = (seeds_run / "README.md").read_text()
    # the best seed's card and config name the top of the directory, not seeds/seed-K (gone): a bug once
    assert f'model="{seeds_run}"' in card and "seeds/seed-" not in card.split("## Over")[0]
    assert f"output_dir: {seeds_run}\n" in (seeds_run / "run_config.yaml").read_text()
    assert "## Over 3 seeds" in card and f"This model is seed {s['best_seed']}" in card
    assert not [p for p in seeds_run.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_parallel_workers_give_a_short_printed_summary(tiny_bert, sentiment_files, tmp_path, capsys):
    """--seed-workers 2: the seeds train in two spawned processes; the printout stays a few lines."""
    out = tmp_path / "two"
    args = train_args(tiny_bert, sentiment_files, out, "--seeds", "0", "1", "--epochs", "1", "--no-baseline")
    assert main([*args, "--seed-workers", "2"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == "2 seeds: mean +- std (95% interval)" and len(printed) <= 12
    assert printed[-1].startswith("model = seed ") and str(out) in printed[-1]
    s = json.loads((out / "seeds_summary.json").read_text())
    assert len(s["summary"]["model/test"]["accuracy"]["values"]) == 2
    assert len(list((out / "seeds").iterdir())) == 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seeds", ""], "--seeds=[] is invalid: give at least one seed"),
        (["--seeds", "1,2,1"], "seed(s) [1] given twice"),
        (["--seeds", "1,x"], "'--seeds' must be an integer, got 'x'"),
        (["--seeds", "1,2", "--seed-workers", "0"], "--seed-workers=0 is invalid"),
    ],
)
def test_bad_seed_options_are_one_line_errors(tiny_bert, sentiment_files, tmp_path, capsys, flags, message):
    out = tmp_path / "bad"
    assert main(train_args(tiny_bert, sentiment_files, out, *flags)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_existing_result_is_kept_until_every_seed_succeeds(
    trained_tiny, sentiment_files, tiny_bert, tmp_path, monkeypatch
):
    """A seed that fails leaves the earlier model in --output-dir untouched and no staging behind."""
    import shutil

    from bertcls.train import seeds

    out = tmp_path / "model"
    shutil.copytree(trained_tiny, out)
    before = (out / "model.safetensors").read_bytes()
    real = seeds._train

    def fail_second(train_one, cfg):
        if cfg.seed == 1:
            raise RuntimeError("boom")
        real(train_one, cfg)

    monkeypatch.setattr(seeds, "_train", fail_second)
    with pytest.raises(RuntimeError):
        main(train_args(tiny_bert, sentiment_files, out, "--seeds", "0,1", "--epochs", "1", "--overwrite"))
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
