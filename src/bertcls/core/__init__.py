"""Shared machinery: config, data, batching, metrics, I/O, errors, checkpoints, runtime, models, plots, reports."""
