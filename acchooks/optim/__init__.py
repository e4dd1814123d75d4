"""Optimizer construction from the ``optimizer`` config."""

from __future__ import annotations

from .builder import build_optimizer, check_optimizer_config, timm_optimizers, torch_optimizers
from .lr_scaling import LrScaling, lr_scaling

__all__ = [
    "LrScaling",
    "build_optimizer",
    "check_optimizer_config",
    "lr_scaling",
    "timm_optimizers",
    "torch_optimizers",
]
