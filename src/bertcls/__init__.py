"""bertcls: from raw text to a deployed BERT text classifier."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["TextClassifier", "__version__"]


def __getattr__(name: str):
    # Lazy: `import bertcls` (and `bertcls --help`) must not pay for importing torch/transformers.
    if name == "TextClassifier":
        from bertcls.classifier import TextClassifier

        return TextClassifier
    raise AttributeError(name)
