"""acchooks: MMCV-style config-and-hooks training on HuggingFace Accelerate.

The names below are imported on first use (PEP 562), so that ``acchooks.config`` and the
config check start without importing timm, torchvision or Accelerate; each registry
imports its built-ins the first time it is looked up."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Config": "acchooks.config",
    "Hook": "acchooks.hooks",
    "Priority": "acchooks.hooks",
    "HOOKS": "acchooks.registry",
    "MODELS": "acchooks.registry",
    "DATASETS": "acchooks.registry",
    "LOSSES": "acchooks.registry",
    "RUNNERS": "acchooks.registry",
    "Runner": "acchooks.runner",
    "EpochBasedRunner": "acchooks.runner",
    "IterBasedRunner": "acchooks.runner",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'acchooks' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
