"""Evaluators: the T2M extractor, exact metrics, the repeat protocol, MARDM, caption metrics."""
