"""Inference and deployment verbs: ``bertcls predict``, ``bertcls export``, ``bertcls serve``."""
