"""MMClassification 0.x's own LR policy (``mmcls/core/hook/lr_updater.py``), as a pure
function: ``lr_config=dict(policy='CosineAnnealingCooldown', min_lr=1e-5,
cool_down_time=10, cool_down_ratio=0.1)``."""

from __future__ import annotations

from ..config.checks import non_negative_int, number
from .base import (
    LR_POLICIES,
    PolicySpec,
    all_of,
    annealing_cos,
    arg_check,
    check_one_of,
    policy,
)

_CHECK = all_of(
    check_one_of("min_lr", "min_lr_ratio"),
    arg_check("cool_down_time", non_negative_int, 10),
    arg_check("cool_down_ratio", number, 0.1),
)


@policy(LR_POLICIES, "CosineAnnealingCooldown", PolicySpec(needs_max=True, check=_CHECK))
def cosine_annealing_cooldown(
    base: float,
    progress: int,
    max_progress: int,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
    cool_down_ratio: float = 0.1,
    cool_down_time: int = 10,
) -> float:
    """Cosine from ``base`` to the target over ``max_progress - cool_down_time``, then
    ``target * cool_down_ratio`` for the last ``cool_down_time`` (mmcls' formula)."""
    target = base * min_lr_ratio if min_lr_ratio is not None else min_lr
    if progress > max_progress - cool_down_time:
        return target * cool_down_ratio
    span = max_progress - cool_down_time  # 0 only at progress 0, where mmcls divides by 0
    return annealing_cos(base, target, progress / span if span > 0 else 0.0)
