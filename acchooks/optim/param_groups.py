"""Parameter groups: mmcv's ``paramwise_cfg`` (DefaultOptimizerConstructor) and timm's
layer-wise lr decay, as lists of param-group dicts for any optimizer.

mmcv makes one group per parameter; parameters with the same (lr, weight_decay) are
merged here, which changes nothing numerically and keeps the log readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ..errors import did_you_mean

MULTS = (
    "bias_lr_mult",
    "bias_decay_mult",
    "norm_decay_mult",
    "dwconv_decay_mult",
    "dcn_offset_lr_mult",
)
PARAMWISE_KEYS = (*MULTS, "custom_keys", "bypass_duplicate")
NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def check_paramwise_cfg(cfg: Any, base_wd: float | None, path: str) -> list[str]:
    """Problems of a ``paramwise_cfg`` dict (mmcv's checks, as messages)."""
    if not isinstance(cfg, Mapping):
        return [f"{path}: expected a dict such as dict(norm_decay_mult=0.0), got {cfg!r}"]
    problems = [
        f"{path}: unexpected key '{k}'{did_you_mean(k, PARAMWISE_KEYS)} "
        f"(accepted: {', '.join(PARAMWISE_KEYS)})"
        for k in cfg
        if k not in PARAMWISE_KEYS
    ]
    problems += [
        f"{path}.{k}: expected a number, got {cfg[k]!r}"
        for k in MULTS
        if k in cfg and (not isinstance(cfg[k], (int, float)) or isinstance(cfg[k], bool))
    ]
    custom = cfg.get("custom_keys", {})
    if not isinstance(custom, Mapping):
        return problems + [
            f"{path}.custom_keys: expected a dict name -> dict(lr_mult=.., "
            f"decay_mult=..), got {custom!r}"
        ]
    for key, rule in custom.items():
        if not isinstance(rule, Mapping) or any(k not in ("lr_mult", "decay_mult") for k in rule):
            problems.append(
                f"{path}.custom_keys['{key}']: expected dict(lr_mult=.., "
                f"decay_mult=..), got {rule!r}"
            )
        elif "decay_mult" in rule and base_wd is None:
            problems.append(f"{path}.custom_keys['{key}']: decay_mult needs optimizer.weight_decay")
    if base_wd is None:
        problems += [
            f"{path}.{k}: needs optimizer.weight_decay (mmcv: base_wd should not be None)"
            for k in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult")
            if k in cfg
        ]
    return problems


def _custom_key_rule(
    key: str, rule: Mapping[str, Any], base_lr: float, base_wd: float | None
) -> tuple[float, float | None, str]:
    """(lr, weight_decay, group name) of a parameter matched by ``custom_keys[key]``."""
    lr = base_lr * rule.get("lr_mult", 1.0)
    wd = base_wd * rule.get("decay_mult", 1.0) if base_wd is not None else base_wd
    return lr, wd, key


def _builtin_rule(
    name: str,
    is_norm: bool,
    is_dwconv: bool,
    base_lr: float,
    base_wd: float | None,
    mult: Mapping[str, float],
) -> tuple[float, float | None, str]:
    """(lr, weight_decay, group name) from the ``*_mult`` keys, as mmcv applies them: a
    norm layer's bias is a norm parameter (its lr is not bias_lr_mult'ed)."""
    why = "norm" if is_norm else "dwconv" if is_dwconv else "bias" if name == "bias" else "default"
    lr, wd = base_lr, base_wd
    if name == "bias" and not is_norm:
        lr = base_lr * mult["bias_lr_mult"]
    if base_wd is not None:
        if is_norm:
            wd = base_wd * mult["norm_decay_mult"]
        elif is_dwconv:
            wd = base_wd * mult["dwconv_decay_mult"]
        elif name == "bias":
            wd = base_wd * mult["bias_decay_mult"]
    return lr, wd, why


def paramwise_groups(
    model: nn.Module, base_lr: float, base_wd: float | None, cfg: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """mmcv's DefaultOptimizerConstructor.add_params, merged by (lr, weight_decay)."""
    custom = dict(cfg.get("custom_keys", {}))
    # longest key first, alphabetical among equals, as mmcv sorts them
    keys = sorted(sorted(custom), key=len, reverse=True)
    mult = {k: cfg.get(k, 1.0) for k in MULTS}
    groups: dict[tuple, dict[str, Any]] = {}
    seen: set[int] = set()
    for prefix, module in model.named_modules():
        is_norm = isinstance(module, NORMS)
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen and cfg.get("bypass_duplicate", False):
                continue  # shared parameter: already in a group
            seen.add(id(param))
            lr, wd, why = base_lr, base_wd, "default"  # frozen: no rule applies
            if param.requires_grad:
                full = f"{prefix}.{name}"  # mmcv matches against '.name' at the root too
                key = next((k for k in keys if k in full), None)
                if key is not None:
                    lr, wd, why = _custom_key_rule(key, custom[key], base_lr, base_wd)
                else:
                    lr, wd, why = _builtin_rule(name, is_norm, is_dwconv, base_lr, base_wd, mult)
            group = groups.setdefault(
                (lr, wd),
                {"params": [], "lr": lr} | ({"weight_decay": wd} if wd is not None else {}),
            )
            group["params"].append(param)
            group.setdefault("_why", set()).add(why)
    for group in groups.values():  # a name for the log: the rules that made this group
        group["name"] = "+".join(sorted(group.pop("_why")))
    return list(groups.values())


def layer_decay_groups(
    model: nn.Module, weight_decay: float, layer_decay: float, **kwargs: Any
) -> list[dict[str, Any]]:
    """timm's ``param_groups_layer_decay`` (needs a timm model with ``group_matcher``)."""
    from timm.optim import param_groups_layer_decay

    if not hasattr(model, "group_matcher"):
        from ..errors import ConfigError

        raise ConfigError(
            f"optimizer.layer_decay: {type(model).__name__} has no group_matcher(); "
            f"layer-wise lr decay needs a timm model"
        )
    no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    return param_groups_layer_decay(
        model,
        weight_decay=weight_decay,
        layer_decay=layer_decay,
        no_weight_decay_list=no_decay,
        **kwargs,
    )


def apply_lr_scale(optimizer) -> None:
    """Bake timm's per-group ``lr_scale`` into ``lr``: our schedules scale each group by
    its own initial lr, so the scale must be part of it (timm's schedulers apply it
    instead)."""
    for g in optimizer.param_groups:
        scale = g.pop("lr_scale", None)
        if scale is not None:
            g["lr"] = g["lr"] * scale
