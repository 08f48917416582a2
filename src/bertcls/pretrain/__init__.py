"""Vocabulary and pretraining verbs: ``bertcls tokenizer train``, ``bertcls pretrain``."""
