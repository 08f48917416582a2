"""transformers' LOAD REPORT, kept for surprises only.

Loading a base model into ``AutoModelForSequenceClassification`` always creates a new classifier head, and
transformers prints a table of the MISSING ``classifier.*`` weights, which reads like an error on a first
run. When the loading info lists only what fine-tuning expects (a new head, a pooler the base model lacks,
a pretraining checkpoint's MLM/NSP heads left out) we say so in one log line; any other missing,
unexpected or mismatched key is shown as transformers reported it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

log = logging.getLogger("bertcls")

_REPORT_LOGGER = "transformers.modeling_utils"
_NEW_HEAD = re.compile(r"^(classifier|bert\.pooler)\.")  # created for fine-tuning
_DROPPED = re.compile(r"^cls\.")  # the MLM/NSP heads of a pretraining checkpoint


class _Capture(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in str(record.msg):
            self.records.append(record)
            return False
        return True


def only_expected(info: dict) -> bool:
    """True when the loading info names nothing but a new head and dropped pretraining heads."""
    mismatched = [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", ())]
    return (
        not info.get("error_msgs")
        and all(_NEW_HEAD.match(k) for k in list(info.get("missing_keys", ())) + mismatched)
        and all(_DROPPED.match(k) for k in info.get("unexpected_keys", ()))
    )


def load_classifier(load: Callable[..., tuple], n_labels: int):
    """Call ``load(output_loading_info=True)`` (a classifier's ``from_pretrained``); report an expected
    new head in one line and anything else as transformers wrote it. Returns the model."""
    capture = _Capture()
    logger = logging.getLogger(_REPORT_LOGGER)
    logger.addFilter(capture)
    try:
        model, info = load(output_loading_info=True)
    finally:
        logger.removeFilter(capture)
    if only_expected(info):
        if info.get("missing_keys") or info.get("mismatched_keys"):
            log.info(
                "new classification head initialised for %d labels (expected when fine-tuning a base model)",
                n_labels,
            )
    else:
        for record in capture.records:
            logger.handle(record)  # a genuine surprise: show transformers' own report
    return model
