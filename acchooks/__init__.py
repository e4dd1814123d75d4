"""acchooks: MMCV-style config-and-hooks training on HuggingFace Accelerate."""
__version__ = "0.1.0"

from . import datasets, hooks, models  # noqa: E402,F401 - fill the registries
from .config import Config  # noqa: E402
from .hooks import Hook, Priority  # noqa: E402
from .registry import DATASETS, HOOKS, LOSSES, MODELS, RUNNERS  # noqa: E402
from .runner import EpochBasedRunner, IterBasedRunner, Runner  # noqa: E402

__all__ = ["Config", "Hook", "Priority", "HOOKS", "MODELS", "DATASETS", "LOSSES", "RUNNERS",
           "Runner", "EpochBasedRunner", "IterBasedRunner", "__version__"]
