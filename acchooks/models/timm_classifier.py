"""``TimmClassifier``: any timm model by name, built by ``timm.create_model``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import timm
from torch import nn

from ..errors import ConfigError, closest, did_you_mean
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
    model_name: str,
    num_classes: int = 1000,
    pretrained: bool = False,
    grad_checkpointing: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """The plain timm model, so its state_dict is exactly timm's.

    ``kwargs`` go to ``timm.create_model`` (``drop_rate``, ``drop_path_rate``, ``in_chans``...).
    ``grad_checkpointing=True`` calls timm's ``model.set_grad_checkpointing(True)``
    (timm train.py's ``--grad-checkpointing``): activations are recomputed in backward.
    """
    message = _unknown_model_message(model_name)
    if message:
        raise ConfigError(f"model.model_name: {message}")
    model = timm.create_model(model_name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    if grad_checkpointing:
        try:
            model.set_grad_checkpointing(True)
        except (AssertionError, AttributeError, NotImplementedError) as e:
            raise ConfigError(_no_grad_checkpointing(model_name, str(e) or type(e).__name__)) from e
    return model


def _no_grad_checkpointing(model_name: str, why: str) -> str:
    return (
        f"model.grad_checkpointing: timm model '{model_name}' does not support gradient "
        f"checkpointing ({why}); remove grad_checkpointing or choose another model"
    )


# TimmClassifier's own, and what build_model takes out of cfg.model before building
_OWN_KEYS = ("type", "model_name", "num_classes", "pretrained", "grad_checkpointing")
_BUILD_KEYS = ("loss", "init_cfg", "train_cfg")


def _kwargs_problems(cfg: Mapping[str, Any], path: str) -> list[str]:
    """The keyword arguments the timm model's class does not take, and an unsupported
    ``grad_checkpointing`` (:mod:`.timm_kwargs`, nothing built)."""
    from .timm_kwargs import grad_checkpointing_problem, unexpected_kwargs

    name = cfg["model_name"]
    if not isinstance(name, str) or ":" in name:
        return []
    arch = name.split(".", 1)[0]
    kwargs = {k: v for k, v in cfg.items() if k not in _OWN_KEYS + _BUILD_KEYS}
    bad, accepted, cls = unexpected_kwargs(arch, kwargs)
    problems = [
        f"{path}.{k}: timm model '{name}' ({cls}) takes no argument '{k}'"
        f"{did_you_mean(k, accepted)} (accepted: {', '.join(accepted)})"
        for k in bad
    ]
    gc = cfg.get("grad_checkpointing", False)
    if not isinstance(gc, bool):
        problems.append(f"{path}.grad_checkpointing: expected True or False, got {gc!r}")
    elif gc and (why := grad_checkpointing_problem(arch)):
        problems.append(_no_grad_checkpointing(name, why))
    return problems


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
    return problems or _kwargs_problems(cfg, path)
