"""Model compression verbs: ``bertcls distill`` (and, to come, pruning and the accuracy-vs-speed report)."""
