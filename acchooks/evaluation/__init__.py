"""Evaluation: predictions gathered from every process, and mmcls's metrics."""

from .metrics import accuracy, evaluate

__all__ = ["accuracy", "evaluate"]
