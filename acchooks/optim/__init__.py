"""Optimizer construction from the ``optimizer`` config."""

from __future__ import annotations

from .builder import build_optimizer, check_optimizer_config, timm_optimizers, torch_optimizers

__all__ = ["build_optimizer", "check_optimizer_config", "timm_optimizers", "torch_optimizers"]
