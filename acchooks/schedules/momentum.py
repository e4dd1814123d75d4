"""mmcv 1.x's momentum policies (``mmcv/runner/hooks/momentum_updater.py``), pure.

The value is SGD's ``momentum`` or Adam's ``betas[0]``; the hook decides which.
"""

from __future__ import annotations

from .base import (
    ANNEAL,
    MOMENTUM_POLICIES,
    PolicySpec,
    all_of,
    annealing_cos,
    annealing_linear,
    check_anneal,
    check_one_of,
    check_per_group,
    check_step,
    check_unit,
    policy,
    split_target_ratio,
)
from .lr import CYCLIC, cyclic_value, step_exponent


@policy(MOMENTUM_POLICIES, "Step", PolicySpec(check=check_step))
def step(
    base: float,
    progress: int,
    max_progress: int | None,
    step: int | list[int],
    gamma: float = 0.5,
    min_momentum: float | None = None,
) -> float:
    momentum = base * gamma ** step_exponent(progress, step)
    return max(momentum, min_momentum) if min_momentum is not None else momentum


def _target(base: float, minimum: float | None, ratio: float | None) -> float:
    return base * ratio if ratio is not None else minimum


@policy(
    MOMENTUM_POLICIES,
    "CosineAnnealing",
    PolicySpec(needs_max=True, check=check_one_of("min_momentum", "min_momentum_ratio")),
)
def cosine_annealing(
    base: float,
    progress: int,
    max_progress: int,
    min_momentum: float | None = None,
    min_momentum_ratio: float | None = None,
) -> float:
    return annealing_cos(
        base, _target(base, min_momentum, min_momentum_ratio), progress / max_progress
    )


@policy(
    MOMENTUM_POLICIES,
    "LinearAnnealing",
    PolicySpec(needs_max=True, check=check_one_of("min_momentum", "min_momentum_ratio")),
)
def linear_annealing(
    base: float,
    progress: int,
    max_progress: int,
    min_momentum: float | None = None,
    min_momentum_ratio: float | None = None,
) -> float:
    return annealing_linear(
        base, _target(base, min_momentum, min_momentum_ratio), progress / max_progress
    )


@policy(MOMENTUM_POLICIES, "Cyclic", CYCLIC)
def cyclic(
    base: float,
    progress: int,
    max_progress: int,
    target_ratio: float | tuple[float, ...] = (0.85 / 0.95, 1),
    cyclic_times: int = 1,
    step_ratio_up: float = 0.4,
    anneal_strategy: str = "cos",
    gamma: float = 1,
) -> float:
    return cyclic_value(
        base,
        progress,
        max_progress,
        split_target_ratio(target_ratio),
        cyclic_times,
        step_ratio_up,
        anneal_strategy,
        gamma,
    )


@policy(
    MOMENTUM_POLICIES,
    "OneCycle",
    PolicySpec(
        needs_max=True,
        iter_only=True,
        per_group=("base_momentum", "max_momentum"),
        check=all_of(
            check_per_group("base_momentum"),
            check_per_group("max_momentum"),
            check_unit("pct_start", 0.3),
            check_anneal,
        ),
    ),
)
def one_cycle(
    base: float,
    progress: int,
    max_progress: int,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    three_phase: bool = False,
) -> float:
    # mmcv ignores the optimizer's momentum: max_momentum -> base_momentum -> max_momentum,
    # the phases ending at pct_start of the run's steps (mmcv has no total_steps here)
    hi, lo, total = max_momentum, base_momentum, max_progress
    if three_phase:
        phases = [
            (float(pct_start * total) - 1, hi, lo),
            (float(2 * pct_start * total) - 2, lo, hi),
            (total - 1, hi, hi),
        ]
    else:
        phases = [(float(pct_start * total) - 1, hi, lo), (total - 1, lo, hi)]
    start = 0
    for i, (end, s, e) in enumerate(phases):
        # mmcv: the last phase also takes any step past its end
        if progress <= end or i == len(phases) - 1:
            return ANNEAL[anneal_strategy](s, e, (progress - start) / (end - start))
        start = end
    return hi  # unreachable
