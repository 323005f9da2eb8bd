"""Metrics that judge a model: control adherence (Music ControlNet's definitions), more in later modules."""

from .adherence import dynamics_correlation, melody_accuracy

__all__ = ["dynamics_correlation", "melody_accuracy"]
