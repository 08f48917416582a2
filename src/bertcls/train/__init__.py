"""Fine-tuning and evaluation verbs: ``bertcls train``, ``bertcls evaluate``."""
