"""``build_optimizer``: a torch.optim class by name, or a timm optimizer by name.

``type='SGD'`` (any ``torch.optim`` class name, case-sensitive) builds that class on
``model.parameters()`` with the other keys, as MMCV does: one parameter group, weight
decay on every parameter. Any other name goes to ``timm.optim.create_optimizer_v2``
(``'lamb'``, ``'lars'``, ``'adamp'``, ``'lion'``, ``'adamw'``, ``'lookahead_adamw'``...),
which keeps timm's defaults: no weight decay on biases and norm weights
(``filter_bias_and_bn=True``), ``momentum=0.9`` and, for ``'sgd'``, Nesterov.

``paramwise_cfg`` (mmcv's DefaultOptimizerConstructor: ``bias_lr_mult``,
``bias_decay_mult``, ``norm_decay_mult``, ``dwconv_decay_mult``, ``custom_keys``) and
``layer_decay`` (timm's layer-wise lr decay) build param groups for either kind; each
group's lr already includes its multiplier, so the schedules scale it from there.

timm's ``lr_base`` / ``lr_base_size`` / ``lr_base_scale`` may replace ``lr``: with the
:class:`~acchooks.optim.lr_scaling.LrScaling` the runner passes (global batch known),
the configured lr is scaled before the groups are built (see :mod:`.lr_scaling`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..config.checks import expected, optional, positive_float, problems_of
from ..errors import ConfigError, closest, did_you_mean
from ..registry import accepted_arguments
from .lr_scaling import LrScaling, lr_base_problems, split_lr_base
from .options import hyperparameter_problems
from .param_groups import (
    apply_lr_scale,
    check_paramwise_cfg,
    layer_decay_groups,
    paramwise_groups,
)

# Keys that MMCV accepts in ``optimizer`` but that are not implemented here yet.
_UNSUPPORTED = {"constructor": "custom optimizer constructors are not supported yet"}
# Keys that shape the param groups, not the optimizer class
_GROUP_KEYS = ("paramwise_cfg", "layer_decay")
_LAYER_DECAY = optional(positive_float.named("a positive float such as 0.75"))


def torch_optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    """Name -> class for every optimizer class in ``torch.optim``."""
    return {
        name: obj
        for name, obj in vars(torch.optim).items()
        if inspect.isclass(obj)
        and issubclass(obj, torch.optim.Optimizer)
        and obj is not torch.optim.Optimizer
    }


def _timm_optim():
    """timm.optim, imported when a timm optimizer is asked for (importing timm takes
    seconds; a torch.optim config is checked without it)."""
    import timm.optim

    return timm.optim


def timm_optimizers() -> list[str]:
    """timm's optimizer names (each may also be prefixed with ``lookahead_``)."""
    return list(_timm_optim().list_optimizers())


def _timm_base_name(name: str) -> str | None:
    """The timm registry name behind ``name``, or None if timm does not know it."""
    parts = name.lower().split("_")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "lookahead"):
        return None
    return parts[-1] if parts[-1] in timm_optimizers() else None


def _unknown_type_message(name: Any, path: str) -> str:
    near = closest(str(name), [*torch_optimizers(), *timm_optimizers()], n=3)
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    return (
        f"{path}.type: unknown optimizer {name!r}{hint} (a torch.optim class such as "
        f"'SGD' or 'AdamW', or a timm optimizer name such as 'lamb'; see "
        f"timm.optim.list_optimizers())"
    )


def _timm_arguments(base: str) -> tuple[set[str], bool]:
    """Keyword arguments accepted by timm's factory for optimizer ``base``."""
    names, _ = accepted_arguments(_timm_optim().create_optimizer_v2)
    names -= {"model_or_params", "opt"}
    try:
        opt_class = _timm_optim().get_optimizer_class(base, bind_defaults=False)
    except (ImportError, AssertionError, ValueError):  # apex / bitsandbytes absent or no CUDA
        return names, True
    cls_names, var_kw = accepted_arguments(opt_class)
    # create_optimizer_v2 drops eps/betas for optimizers without them.
    return (names | cls_names | {"eps", "betas"}) - {"params"}, var_kw


def check_optimizer_config(cfg: Any, path: str = "optimizer") -> list[str]:
    """Problems in an ``optimizer`` config, found without building anything."""
    if not isinstance(cfg, Mapping):
        return [expected(path, "a dict such as dict(type='SGD', lr=0.1)", cfg)]
    if "type" not in cfg:
        return [
            f"{path}.type: missing; name a torch.optim class ('SGD', 'AdamW', ...) "
            f"or a timm optimizer ('lamb', 'lars', ...)"
        ]
    kwargs, lr_base = split_lr_base({k: v for k, v in cfg.items() if k != "type"})
    name, problems = cfg["type"], lr_base_problems(lr_base, "lr" in kwargs, path)
    problems += _check_group_keys(kwargs, path)
    torch_classes = torch_optimizers()
    if isinstance(name, str) and name in torch_classes:
        kwargs.pop("layer_decay", None)  # ours for torch classes, timm's own for timm names
        label, cls = name, torch_classes[name]
        allowed, var_kw = accepted_arguments(cls)
        allowed.discard("params")
        problems += [
            f"{path}: missing argument '{r}' for {name}"
            for r in _required_arguments(cls)
            if r not in kwargs
        ]
    elif isinstance(name, str) and _timm_base_name(name):
        label = f"timm optimizer '{name}'"
        allowed, var_kw = _timm_arguments(_timm_base_name(name))
    else:
        return problems + [_unknown_type_message(name, path)]
    problems += hyperparameter_problems(kwargs, path)
    if not var_kw:
        problems += [
            f"{path}: unexpected argument '{k}' for {label}{did_you_mean(k, sorted(allowed))}"
            for k in kwargs
            if k not in allowed
        ]
    return problems


def _check_group_keys(kwargs: dict[str, Any], path: str) -> list[str]:
    """Unsupported keys and ``paramwise_cfg`` (both popped from ``kwargs``), and
    ``layer_decay``: the keys that shape the param groups, not the optimizer class."""
    problems = [
        f"{path}.{key}: {msg} (remove it)" for key, msg in _UNSUPPORTED.items() if key in kwargs
    ]
    for key in _UNSUPPORTED:
        kwargs.pop(key, None)
    if "paramwise_cfg" in kwargs:
        problems += check_paramwise_cfg(
            kwargs.pop("paramwise_cfg"), kwargs.get("weight_decay"), f"{path}.paramwise_cfg"
        )
        if "layer_decay" in kwargs:
            problems.append(f"{path}: give paramwise_cfg or layer_decay, not both")
    return problems + problems_of((_LAYER_DECAY, kwargs.get("layer_decay"), f"{path}.layer_decay"))


def _required_arguments(cls: type[torch.optim.Optimizer]) -> list[str]:
    """The arguments of an optimizer class without a default, besides ``params``."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [
        p.name
        for p in params
        if p.default is p.empty
        and p.name not in ("self", "params")
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def build_optimizer(
    model: nn.Module, cfg: Mapping[str, Any], scaling: LrScaling | None = None
) -> torch.optim.Optimizer:
    """The optimizer for ``model`` described by ``cfg`` (see the module docstring), its
    lr scaled by ``scaling`` (without one, a ``lr_base`` is used as the lr)."""
    problems = check_optimizer_config(cfg)
    if problems:
        raise ConfigError(problems)
    kwargs, lr_base = split_lr_base(cfg)
    if "lr_base" in lr_base:
        kwargs["lr"] = lr_base["lr_base"]
    if scaling is not None:
        kwargs["lr"] = scaling.lr
    name = kwargs.pop("type")
    paramwise = kwargs.pop("paramwise_cfg", None)
    cls = torch_optimizers().get(name)
    params: Any = model
    if paramwise is not None:
        lr = kwargs.get("lr", _default_lr(cls) if cls is not None else None)
        params = paramwise_groups(model, lr, kwargs.get("weight_decay"), paramwise)
    elif cls is not None and kwargs.get("layer_decay") is not None:
        params = layer_decay_groups(
            model, kwargs.get("weight_decay", 0.0), kwargs.pop("layer_decay")
        )
    if cls is not None:
        kwargs.pop("layer_decay", None)
        optimizer = cls(model.parameters() if params is model else params, **kwargs)
    else:
        if params is not model:
            kwargs.setdefault("weight_decay", 0.0)  # groups carry their own
        optimizer = _timm_optim().create_optimizer_v2(params, opt=name, **kwargs)
    apply_lr_scale(optimizer)
    if scaling is not None:
        scaling.mark(optimizer)
    return optimizer


def _default_lr(cls: type[torch.optim.Optimizer]) -> float | None:
    default = inspect.signature(cls.__init__).parameters.get("lr")
    return None if default is None or default.default is default.empty else default.default
