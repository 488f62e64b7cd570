"""Pipelines compose models: align -> parse -> invert -> codes -> hyper-network -> generator."""
