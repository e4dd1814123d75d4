from .metrics import accuracy, evaluate

__all__ = ["accuracy", "evaluate"]
