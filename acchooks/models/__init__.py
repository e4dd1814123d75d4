"""Built-in models and losses, and ``build_model`` (model + criterion from ``cfg.model``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..registry import LOSSES, MODELS
from .losses import (
    BinaryCrossEntropy,
    CrossEntropyLoss,
    LabelSmoothingCrossEntropy,
    SoftTargetCrossEntropy,
)
from .timm_classifier import TimmClassifier, check_timm_model_config

__all__ = [
    "BinaryCrossEntropy",
    "CrossEntropyLoss",
    "LabelSmoothingCrossEntropy",
    "SoftTargetCrossEntropy",
    "TimmClassifier",
    "build_model",
    "check_timm_model_config",
]

DEFAULT_LOSS = {"type": "CrossEntropyLoss"}


def _build(registry, cfg: Any, path: str) -> Any:
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ConfigError(f"{path}: expected a dict with a 'type' key, got {cfg!r}")
    if isinstance(cfg["type"], str) and cfg["type"] not in registry:
        raise ConfigError(f"{path}.type: {registry.unknown_message(cfg['type'])}")
    return registry.build(cfg)


def build_model(
    cfg: Mapping[str, Any], default_loss: Mapping[str, Any] | None = None
) -> tuple[nn.Module, nn.Module | None]:
    """``(model, criterion)`` from a ``model`` config.

    ``loss`` (default ``default_loss`` or ``CrossEntropyLoss``; ``None`` for no criterion) is built through
    ``LOSSES``, everything else through ``MODELS``; ``init_cfg=dict(type='Pretrained',
    checkpoint=PATH, prefix='backbone.')`` then loads weights into the built model.
    """
    cfg = dict(cfg)
    loss_cfg = cfg.pop("loss", default_loss or DEFAULT_LOSS)
    cfg.pop("train_cfg", None)  # MMClassification's batch mixing: the MixupHook's
    init_cfg = cfg.pop("init_cfg", None)
    model = _build(MODELS, cfg, "model")
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model: {cfg['type']!r} built a {type(model).__name__}, not a torch.nn.Module"
        )
    if init_cfg is not None:
        # mmcv's Pretrained init: weights (optionally under one prefix) when the model is built
        from ..checkpoint.weights import init_from_pretrained

        init_from_pretrained(model, init_cfg, "model.init_cfg")
    criterion = None if loss_cfg is None else _build(LOSSES, loss_cfg, "model.loss")
    return model, criterion
