"""Evaluation: predictions gathered from every process, and mmcls's metrics."""

from . import multilabel  # noqa: F401 - registers the multi-label metrics
from .metrics import accuracy, evaluate

__all__ = ["accuracy", "evaluate"]
