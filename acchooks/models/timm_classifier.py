"""``TimmClassifier``: any timm model by name, built by ``timm.create_model``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import timm
from torch import nn

from ..errors import ConfigError, closest
from ..registry import MODELS


@lru_cache(maxsize=1)
def _timm_model_names() -> tuple[str, ...]:
    return tuple(timm.list_models())


def _unknown_model_message(model_name: str) -> str | None:
    """None if timm knows ``model_name``, else a message with the closest names."""
    if not isinstance(model_name, str) or not model_name:
        return f"model_name must be a timm model name, got {model_name!r}"
    if ":" in model_name:  # 'hf-hub:...' / 'local-dir:...': timm resolves these itself
        return None
    arch = model_name.split(".", 1)[0]  # drop a pretrained tag: 'resnet50.a1_in1k'
    if timm.is_model(arch):
        return None
    near = closest(arch, _timm_model_names(), n=3)
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    return f"unknown timm model '{model_name}'{hint} (see timm.list_models())"


@MODELS.register_module()
def TimmClassifier(
    model_name: str, num_classes: int = 1000, pretrained: bool = False, **kwargs: Any
) -> nn.Module:
    """The plain timm model, so its state_dict is exactly timm's.

    ``kwargs`` go to ``timm.create_model`` (``drop_rate``, ``drop_path_rate``, ``in_chans``...).
    """
    message = _unknown_model_message(model_name)
    if message:
        raise ConfigError(f"model.model_name: {message}")
    return timm.create_model(model_name, pretrained=pretrained, num_classes=num_classes, **kwargs)


def check_timm_model_config(cfg: Mapping[str, Any], path: str = "model") -> list[str]:
    """Problems in a ``TimmClassifier`` model config (without building the model)."""
    if "model_name" not in cfg:
        return [
            f"{path}.model_name: missing; TimmClassifier needs a timm model name such as 'resnet18'"
        ]
    message = _unknown_model_message(cfg["model_name"])
    problems = [f"{path}.model_name: {message}"] if message else []
    nc = cfg.get("num_classes", 1000)
    if not isinstance(nc, int) or isinstance(nc, bool) or nc < 0:
        problems.append(f"{path}.num_classes: {nc!r} must be a non-negative int")
    return problems
