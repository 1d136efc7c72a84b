"""The pilot turnover model: time-based training, evaluation with intervals, registry, scores, report."""
