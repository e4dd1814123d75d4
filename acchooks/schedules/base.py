"""How a schedule policy is declared: a pure function plus a few facts about it.

A policy maps ``(base, progress, max_progress, **args)`` to the regular (post-warmup)
value. ``progress`` is the epoch (``by_epoch=True``) or the optimizer-step count
(``by_epoch=False``); ``max_progress`` is ``max_epochs`` or the total of optimizer steps.
Phases that mmcv computes in ``before_run`` (Cyclic, OneCycle) are recomputed from
``max_progress`` on every call, so nothing but the counters needs checkpointing.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
def is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_step(args: dict) -> list[str]:
    step = args.get("step")
    if isinstance(step, int) and not isinstance(step, bool):
        return [] if step > 0 else [f"step: must be a positive int, got {step}"]
    if isinstance(step, (list, tuple)):
        if all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in step):
            return []
        return [f"step: every milestone must be a positive int, got {list(step)}"]
    return [f"step: must be an int or a list of ints, got {step!r}"]


def check_one_of(a: str, b: str) -> Check:
    def check(args: dict) -> list[str]:
        given = [k for k in (a, b) if args.get(k) is not None]
        if len(given) != 1:
            return [f"give exactly one of {a} / {b}, got {', '.join(given) or 'neither'}"]
        return []

    return check


def check_unit(key: str, default: float, low_open: bool = False, high_open: bool = False) -> Check:
    lo, hi = "(" if low_open else "[", ")" if high_open else "]"

    def check(args: dict) -> list[str]:
        v = args.get(key, default)
        ok = is_number(v) and (v > 0 if low_open else v >= 0) and (v < 1 if high_open else v <= 1)
        return [] if ok else [f"{key}: expected a float in {lo}0, 1{hi}, got {v!r}"]

    return check


def check_anneal(args: dict) -> list[str]:
    s = args.get("anneal_strategy", "cos")
    return [] if s in ANNEAL else [f"anneal_strategy: must be 'cos' or 'linear', got {s!r}"]


def check_target_ratio(args: dict) -> list[str]:
    tr = args.get("target_ratio")
    if tr is None or is_number(tr):
        return []
    if isinstance(tr, (list, tuple)) and len(tr) in (1, 2) and all(is_number(t) for t in tr):
        return []
    return [f"target_ratio: expected a float or a tuple of one or two floats, got {tr!r}"]


def check_per_group(key: str, kinds: str = "a float") -> Check:
    def check(args: dict) -> list[str]:
        v = args.get(key)
        if v is None or is_number(v) or (isinstance(v, (list, tuple)) and all(map(is_number, v))):
            return []
        return [f"{key}: expected {kinds} or a list with one value per param group, got {v!r}"]

    return check


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
