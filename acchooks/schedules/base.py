"""How a schedule policy is declared: a pure function plus a few facts about it.

A policy maps ``(base, progress, max_progress, **args)`` to the regular (post-warmup)
value. ``progress`` is the epoch (``by_epoch=True``) or the optimizer-step count
(``by_epoch=False``); ``max_progress`` is ``max_epochs`` or the total of optimizer steps.
Phases that mmcv computes in ``before_run`` (Cyclic, OneCycle) are recomputed from
``max_progress`` on every call, so nothing but the counters needs checkpointing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config.checks import Check as ValueCheck
from ..config.checks import is_number, number_in, one_of, positive_int, sequence_of
from ..registry import LR_POLICIES, Registry

MOMENTUM_POLICIES = Registry("momentum policy")

Check = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class PolicySpec:
    """What the hook must know about a policy besides its formula."""

    needs_max: bool = False  # uses max_progress (max_epochs / total optimizer steps)
    iter_only: bool = False  # mmcv: 'currently only support "by_epoch" = False'
    per_group: tuple[str, ...] = ()  # arguments that may be a list, one value per group
    check: Check | None = None  # argument problems, as messages without the path
    run_check: Callable[[dict[str, Any], int], list[str]] | None = field(default=None)
    # the value follows evaluation results, not only the counters: the hook registered as
    # f'{name}LrUpdaterHook' keeps that state (ReduceLROnPlateau, hooks/plateau.py)
    metric_driven: bool = False


def policy(registry: Registry, name: str, spec: PolicySpec | None = None) -> Callable:
    """Register a pure policy function under mmcv's policy ``name``."""

    def deco(fn: Callable) -> Callable:
        fn.spec = spec or PolicySpec()
        registry.register_module(name=name, module=fn)
        return fn

    return deco


def policy_key(policy: str) -> str:
    """mmcv's rule: an all-lower-case policy name is title-cased ('step' -> 'Step')."""
    return policy.title() if policy.islower() else policy


def annealing_cos(start: float, end: float, factor: float, weight: float = 1.0) -> float:
    """mmcv's cosine from ``weight * start + (1 - weight) * end`` (factor 0) to ``end``."""
    cos_out = math.cos(math.pi * factor) + 1
    return end + 0.5 * weight * (start - end) * cos_out


def annealing_linear(start: float, end: float, factor: float) -> float:
    return start + (end - start) * factor


ANNEAL = {"cos": annealing_cos, "linear": annealing_linear}


# ---------------------------------------------------------------- argument checks
# Each returns its problems as messages without the config path, which the hook prefixes
# (``lr_config (Step): step: expected ...``).
def arg_check(key: str, check: ValueCheck, default: Any = None) -> Check:
    """The policy-argument check of ``args[key]`` (``default`` when absent)."""
    return lambda args: [m for m in [check.problem(args.get(key, default), key)] if m]


MILESTONES = positive_int | sequence_of(positive_int, "a list of positive ints")
check_step = arg_check("step", MILESTONES)


def check_one_of(a: str, b: str) -> Check:
    def check(args: dict) -> list[str]:
        given = [k for k in (a, b) if args.get(k) is not None]
        if len(given) != 1:
            return [f"give exactly one of {a} / {b}, got {', '.join(given) or 'neither'}"]
        return []

    return check


def check_unit(key: str, default: float, low_open: bool = False, high_open: bool = False) -> Check:
    return arg_check(key, number_in(0, 1, low_open, high_open), default)


check_anneal = arg_check("anneal_strategy", one_of(ANNEAL), "cos")

_NUMBERS = ValueCheck(
    "a list of numbers", lambda v: isinstance(v, (list, tuple)) and all(map(is_number, v))
)
TARGET_RATIO = ValueCheck(
    "a float or a tuple of one or two floats",
    lambda v: (
        v is None
        or is_number(v)
        or (isinstance(v, (list, tuple)) and len(v) in (1, 2) and all(map(is_number, v)))
    ),
)
check_target_ratio = arg_check("target_ratio", TARGET_RATIO)


def check_per_group(key: str, kinds: str = "a float") -> Check:
    per_group = ValueCheck(
        f"{kinds} or a list with one value per param group",
        lambda v: v is None or is_number(v) or _NUMBERS.ok(v),
    )
    return arg_check(key, per_group)


def all_of(*checks: Check) -> Check:
    return lambda args: [p for c in checks for p in c(args)]


def split_target_ratio(tr: float | Sequence[float]) -> tuple[float, float]:
    """mmcv: a float r means (r, r / 1e5); a 1-tuple likewise."""
    if is_number(tr):
        return tr, tr / 1e5
    return (tr[0], tr[0] / 1e5) if len(tr) == 1 else (tr[0], tr[1])


__all__ = [
    "LR_POLICIES",
    "MOMENTUM_POLICIES",
    "PolicySpec",
    "policy",
    "policy_key",
    "annealing_cos",
    "annealing_linear",
    "ANNEAL",
]
