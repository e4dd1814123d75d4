"""ReduceLROnPlateau: lower the LR when an evaluation metric stalls (torch's
``ReduceLROnPlateau`` logic, mmengine's ``ReduceOnPlateauLR`` names).

``lr_config=dict(policy='ReduceLROnPlateau', monitor='accuracy_top-1', factor=0.1,
patience=2)``. Unlike the other policies the value is not a function of the counters
alone: it is ``max(base * factor ** n, min_lr)`` after ``n`` reductions, and ``n`` grows
when ``monitor`` has not improved for more than ``patience`` evaluations. The hook that
counts them (and checkpoints the count) is
:class:`~acchooks.hooks.plateau.ReduceLROnPlateauLrUpdaterHook`; this module holds the
arguments, their checks and the formula.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..config.checks import (
    non_negative_int,
    number_at_least,
    number_in,
    one_of,
    optional,
    string,
)
from .base import LR_POLICIES, PolicySpec, all_of, arg_check, check_per_group, policy

RULES = ("greater", "less")
THRESHOLD_RULES = ("rel", "abs")


def _check_delta(args: dict[str, Any]) -> list[str]:
    if args.get("min_delta") is not None and (
        args.get("threshold") is not None or args.get("threshold_rule") is not None
    ):
        return [
            "min_delta is threshold with threshold_rule='abs'; give min_delta or "
            "threshold/threshold_rule, not both"
        ]
    return []


_check = all_of(
    arg_check("monitor", string),
    arg_check("rule", optional(one_of(RULES))),
    arg_check("factor", number_in(0, 1, low_open=True, high_open=True), 0.1),
    arg_check("patience", non_negative_int, 10),
    arg_check("threshold", number_at_least(0), 1e-4),
    arg_check("threshold_rule", one_of(THRESHOLD_RULES), "rel"),
    arg_check("min_delta", optional(number_at_least(0))),
    arg_check("cooldown", non_negative_int, 0),
    arg_check("eps", number_at_least(0), 1e-8),
    check_per_group("min_lr"),
    _check_delta,
)


@policy(
    LR_POLICIES,
    "ReduceLROnPlateau",
    PolicySpec(metric_driven=True, per_group=("min_lr",), check=_check),
)
def reduce_on_plateau(
    base: float,
    progress: int,
    max_progress: int | None,
    monitor: str,
    rule: str | None = None,
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_rule: str = "rel",
    min_delta: float | None = None,
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> float:
    """The value before any reduction (the hook applies :func:`reduced_lr`)."""
    return base


def reduced_lr(base: float, reductions: int, factor: float, min_lr: float) -> float:
    """The LR after ``reductions`` reductions by ``factor``, never below ``min_lr``."""
    return max(base * factor**reductions, min_lr)


def plateau_args(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with every default of :func:`reduce_on_plateau` filled in."""
    params = list(inspect.signature(reduce_on_plateau).parameters.values())[3:]
    return {p.name: args.get(p.name, p.default) for p in params}
