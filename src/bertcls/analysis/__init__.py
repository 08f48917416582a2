"""Analysis verbs: why a model predicts what it does (``bertcls explain``)."""
