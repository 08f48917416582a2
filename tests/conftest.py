"""Fixtures: tiny random BERTs and tiny vocabularies (seconds per test), synthetic labelled data.

Tests never touch the network: the hub is switched off before transformers is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
from helpers import make_tiny_bert, sentiment_rows, train_args, write_csv  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

# transformers binds its log handler to the sys.stderr of its first log call. Made here, that is pytest's
# session-long stream; made inside a capsys test (whichever runs first), it is that test's stream, closed
# when the test ends, and every later warning from transformers fails with a logging traceback.
hf_logging.get_logger("transformers")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def sentiment_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    return {
        "train": write_csv(d / "train.csv", sentiment_rows(160, seed=1)),
        "dev": write_csv(d / "dev.csv", sentiment_rows(40, seed=2)),
        "test": write_csv(d / "test.csv", sentiment_rows(40, seed=3)),
    }


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory, tiny_bert, sentiment_files) -> Path:
    """One tiny fine-tuning run shared by the tests that only read its outputs."""
    from bertcls.cli import main

    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(train_args(tiny_bert, sentiment_files, out)) == 0
    return out
