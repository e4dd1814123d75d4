"""Schedule policies: pure functions of training progress, as in mmcv's lr_updater.py and
momentum_updater.py, registered under mmcv's policy names
(``lr_config=dict(policy='step')`` -> ``'Step'``, ``'CosineAnnealing'``, ...).

Being pure, they resume for free: nothing but the counters has to be checkpointed.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import did_you_mean
from ..registry import Registry, accepted_arguments
from . import lr, mmcls, momentum, plateau  # noqa: F401 - fill the registries
from .base import (
    LR_POLICIES,
    MOMENTUM_POLICIES,
    PolicySpec,
    annealing_cos,
    annealing_linear,
    policy,
    policy_key,
)

_POSITIONAL = {"base", "progress", "max_progress"}


def registry_for(path: str) -> Registry:
    """``momentum_config`` policies or LR policies, by the config key."""
    return MOMENTUM_POLICIES if path.startswith("momentum") else LR_POLICIES


def policy_arguments(fn: Any) -> tuple[set[str], list[str]]:
    """(accepted, required) keyword arguments of a policy function."""
    names, _ = accepted_arguments(fn)
    params = inspect.signature(fn).parameters.values()
    required = [p.name for p in params if p.default is p.empty and p.name not in _POSITIONAL]
    return names - _POSITIONAL, required


def check_policy_args(policy: str, args: dict, path: str, kind: str | None = None) -> list[str]:
    """Problems with a policy name or its arguments, as config-error lines; ``kind``: the
    config key whose policies apply (``'momentum_config'``), when ``path`` is another
    (``custom_hooks[0]``)."""
    registry = registry_for(kind or path)
    key = policy_key(policy) if isinstance(policy, str) else policy
    if not isinstance(key, str) or key not in registry:
        return [
            f"{path}.policy: unknown policy {policy!r}{did_you_mean(str(key), registry.keys())} "
            f"(available: {', '.join(registry.keys())})"
        ]
    fn = registry.get(key)
    names, required = policy_arguments(fn)
    problems = [
        f"{path}: unexpected argument '{k}' for policy '{policy}'{did_you_mean(k, names)} "
        f"(accepted: {', '.join(sorted(names)) or 'none'})"
        for k in args
        if k not in names
    ]
    problems += [
        f"{path}: policy '{policy}' needs argument '{r}'" for r in required if r not in args
    ]
    if not problems and fn.spec.check is not None:
        problems += [f"{path} ({key}): {p}" for p in fn.spec.check(args)]
    return problems


__all__ = [
    "LR_POLICIES",
    "MOMENTUM_POLICIES",
    "PolicySpec",
    "annealing_cos",
    "annealing_linear",
    "check_policy_args",
    "policy",
    "policy_arguments",
    "policy_key",
    "registry_for",
]
