"""Students for `bertcls distill`: layers taken from the teacher, a Google BERT-miniature shape with the
teacher's vocabulary, or a local model directory with exactly the teacher's vocabulary.

Taking layers (DistilBERT's initialisation: every second layer) is written here because transformers
has no API for it: a BERT config with fewer layers, then the teacher's weights copied by name with layer
indices remapped.
"""

from __future__ import annotations

import re
from pathlib import Path

from bertcls.core.errors import UserError

# Turc et al. 2019 "Well-Read Students Learn Better" miniatures: (layers, hidden, heads, feed-forward)
PRESETS = {
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "medium": (8, 512, 8, 2048),
}
LAYER = re.compile(r"(\.layer\.)(\d+)(\.)")


def parse_layers(text: str, n_teacher: int) -> list[int]:
    """'0,2,4' -> [0, 2, 4]; each in range, increasing, at least one, fewer than the teacher has."""
    try:
        layers = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        layers = []
    if not layers or any(not 0 <= i < n_teacher for i in layers) or layers != sorted(set(layers)):
        raise UserError(
            f"--student-layers={text!r} is invalid: give increasing layer indices in 0..{n_teacher - 1}, "
            f"e.g. {','.join(str(i) for i in range(0, n_teacher, 2))}"
        )
    return layers


def from_teacher_layers(teacher, layers: list[int], out: Path) -> str:
    """Save a classifier made of the teacher's embeddings, ``layers`` of its encoder, pooler and head. A
    SetFit teacher (``core.sentence_model.SentenceClassifier``) gives its encoder's embeddings, layers and
    pooler under a new sequence-classification head: its own head reads mean-pooled embeddings, which a
    sequence-classification model has not."""
    from bertcls.core.sentence_model import SentenceClassifier

    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = len(layers)
    if isinstance(teacher, SentenceClassifier):
        from transformers import AutoModelForSequenceClassification

        student = AutoModelForSequenceClassification.from_config(config)
        target, source = student.base_model, teacher.encoder
    else:
        student = teacher.__class__(config)
        target, source = student, teacher
    remap = {old: new for new, old in enumerate(layers)}
    state = {}
    for name, tensor in source.state_dict().items():
        m = LAYER.search(name)
        if m is None:
            state[name] = tensor
        elif int(m.group(2)) in remap:
            state[LAYER.sub(lambda g: f"{g.group(1)}{remap[int(g.group(2))]}{g.group(3)}", name, count=1)] = (
                tensor
            )
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:  # the architecture names its layers differently: say so, do not guess
        raise UserError(
            f"--student-layers: cannot map {type(teacher).__name__}'s layers ({len(missing)} weights missing); "
            f"use --student-preset or --student DIR"
        )
    student.save_pretrained(out)
    return f"teacher layers {','.join(map(str, layers))} of {teacher.config.num_hidden_layers}"


def from_preset(teacher, preset: str, out: Path) -> str:
    """A randomly initialised BERT of a miniature's shape, with the teacher's vocabulary and labels."""
    from transformers import BertConfig, BertForSequenceClassification

    layers, hidden, heads, ff = PRESETS[preset]
    t = teacher.config
    config = BertConfig(
        vocab_size=t.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ff,
        max_position_embeddings=t.max_position_embeddings,
        type_vocab_size=getattr(t, "type_vocab_size", 2),
        pad_token_id=t.pad_token_id,
        num_labels=t.num_labels,
        id2label=t.id2label,
        label2id=t.label2id,
        problem_type=t.problem_type,
    )
    BertForSequenceClassification(config).save_pretrained(out)
    return f"BERT-{preset} ({layers} layers, hidden {hidden}), random initialisation"


def check_same_vocabulary(teacher_dir: str, student_dir: str, given: str | None = None) -> None:
    """Distillation feeds the student the teacher's token ids: the vocabularies must be identical.
    ``given``: what the user passed as --student, when it was an alias resolved to ``student_dir``."""
    from bertcls.core.models import load_tokenizer

    a, b = load_tokenizer(teacher_dir).get_vocab(), load_tokenizer(student_dir).get_vocab()
    if a != b:
        raise UserError(
            f"--student={given or student_dir}: its vocabulary differs from the teacher's ({len(b)} vs {len(a)} "
            f"entries); distillation needs the same tokenizer: use --student-layers or --student-preset"
        )
