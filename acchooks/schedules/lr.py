"""mmcv 1.x's LR policies (``mmcv/runner/hooks/lr_updater.py``), as pure functions.

Each formula is mmcv's, with ``runner.iter`` / ``runner.max_iters`` replaced by the
optimizer-step counter and the total of optimizer steps (the same numbers without
gradient accumulation).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config.checks import number_in, optional, positive_int, sequence_of
from .base import (
    ANNEAL,
    LR_POLICIES,
    PolicySpec,
    all_of,
    annealing_cos,
    annealing_linear,
    arg_check,
    check_anneal,
    check_one_of,
    check_per_group,
    check_step,
    check_target_ratio,
    check_unit,
    policy,
    split_target_ratio,
)


def step_exponent(progress: int, step: int | Sequence[int]) -> int:
    """How many decays have happened: every ``step`` (int) or at each milestone (list)."""
    if isinstance(step, int):
        return progress // step
    for i, s in enumerate(step):
        if progress < s:
            return i
    return len(step)


def cyclic_value(
    base: float,
    progress: int,
    max_progress: int,
    target: tuple[float, float],
    cyclic_times: int,
    step_ratio_up: float,
    anneal_strategy: str,
    gamma: float,
) -> float:
    """mmcv's Cyclic{Lr,Momentum}UpdaterHook.get_*: up then down, ``cyclic_times`` times;
    ``gamma`` shrinks the amplitude every cycle."""
    per_phase = max_progress // cyclic_times
    up = int(step_ratio_up * per_phase)
    curr, scale = progress % per_phase, gamma ** (progress // per_phase)
    for start, end, start_ratio, end_ratio in (
        (0, up, 1, target[0]),
        (up, per_phase, target[0], target[1]),
    ):
        if start <= curr < end:
            if start == 0:
                end_ratio = 1 - scale + end_ratio * scale
            else:
                start_ratio = 1 - scale + start_ratio * scale
            return ANNEAL[anneal_strategy](
                base * start_ratio, base * end_ratio, (curr - start) / (end - start)
            )
    return base  # unreachable for valid arguments


def _cyclic_run_check(args: dict, max_progress: int) -> list[str]:
    n = args.get("cyclic_times", 1)
    return (
        []
        if max_progress // n >= 1
        else [
            f"cyclic_times: {n} cycles need at least {n} optimizer steps, the run has {max_progress}"
        ]
    )


_check_cyclic = all_of(
    arg_check("cyclic_times", positive_int, 1),
    arg_check("gamma", number_in(0, 1, low_open=True), 1),
    check_target_ratio,
    check_unit("step_ratio_up", 0.4, high_open=True),
    check_anneal,
)


CYCLIC = PolicySpec(
    needs_max=True, iter_only=True, check=_check_cyclic, run_check=_cyclic_run_check
)


@policy(LR_POLICIES, "Fixed")
def fixed(base: float, progress: int, max_progress: int | None) -> float:
    return base


@policy(LR_POLICIES, "Step", PolicySpec(check=check_step))
def step(
    base: float,
    progress: int,
    max_progress: int | None,
    step: int | list[int],
    gamma: float = 0.1,
    min_lr: float | None = None,
) -> float:
    lr = base * gamma ** step_exponent(progress, step)
    return max(lr, min_lr) if min_lr is not None else lr


@policy(LR_POLICIES, "Exp")
def exp(base: float, progress: int, max_progress: int | None, gamma: float) -> float:
    return base * gamma**progress


@policy(LR_POLICIES, "Poly", PolicySpec(needs_max=True))
def poly(
    base: float, progress: int, max_progress: int, power: float = 1.0, min_lr: float = 0.0
) -> float:
    coeff = (1 - progress / max_progress) ** power
    return (base - min_lr) * coeff + min_lr


@policy(LR_POLICIES, "Inv")
def inv(
    base: float, progress: int, max_progress: int | None, gamma: float, power: float = 1.0
) -> float:
    return base * (1 + gamma * progress) ** (-power)


def _target(base: float, minimum: float | None, ratio: float | None) -> float:
    return base * ratio if ratio is not None else minimum


@policy(
    LR_POLICIES,
    "CosineAnnealing",
    PolicySpec(needs_max=True, check=check_one_of("min_lr", "min_lr_ratio")),
)
def cosine_annealing(
    base: float,
    progress: int,
    max_progress: int,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
) -> float:
    return annealing_cos(base, _target(base, min_lr, min_lr_ratio), progress / max_progress)


@policy(
    LR_POLICIES,
    "LinearAnnealing",
    PolicySpec(needs_max=True, check=check_one_of("min_lr", "min_lr_ratio")),
)
def linear_annealing(
    base: float,
    progress: int,
    max_progress: int,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
) -> float:
    return annealing_linear(base, _target(base, min_lr, min_lr_ratio), progress / max_progress)


@policy(
    LR_POLICIES,
    "FlatCosineAnnealing",
    PolicySpec(
        needs_max=True,
        check=all_of(check_one_of("min_lr", "min_lr_ratio"), check_unit("start_percent", 0.75)),
    ),
)
def flat_cosine_annealing(
    base: float,
    progress: int,
    max_progress: int,
    start_percent: float = 0.75,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
) -> float:
    start = round(max_progress * start_percent)
    if progress - start < 0:
        return base
    return annealing_cos(
        base, _target(base, min_lr, min_lr_ratio), (progress - start) / (max_progress - start)
    )


PERIODS = sequence_of(positive_int, "a list of positive ints", min_length=1)


def _check_restart(args: dict) -> list[str]:
    periods, weights = args.get("periods"), args.get("restart_weights", [1])
    if not PERIODS.ok(periods):
        return [PERIODS.problem(periods, "periods")]
    if not isinstance(weights, (list, tuple)) or len(weights) != len(periods):
        return [
            f"restart_weights: periods and restart_weights should have the same length "
            f"({len(periods)} periods, restart_weights={weights!r})"
        ]
    return check_one_of("min_lr", "min_lr_ratio")(args)


def _restart_run_check(args: dict, max_progress: int) -> list[str]:
    total = sum(args["periods"])
    return (
        []
        if total >= max_progress
        else [
            f"periods: they sum to {total}, fewer than the {max_progress} the run lasts "
            f"(mmcv: 'Current iteration exceeds cumulative_periods')"
        ]
    )


@policy(
    LR_POLICIES, "CosineRestart", PolicySpec(check=_check_restart, run_check=_restart_run_check)
)
def cosine_restart(
    base: float,
    progress: int,
    max_progress: int | None,
    periods: list[int],
    restart_weights: list[float] = (1,),
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
) -> float:
    cumulative, total = [], 0
    for p in periods:
        total += p
        cumulative.append(total)
    idx = next(i for i, c in enumerate(cumulative) if progress < c)
    nearest_restart = 0 if idx == 0 else cumulative[idx - 1]
    alpha = min((progress - nearest_restart) / periods[idx], 1)
    return annealing_cos(base, _target(base, min_lr, min_lr_ratio), alpha, restart_weights[idx])


@policy(LR_POLICIES, "Cyclic", CYCLIC)
def cyclic(
    base: float,
    progress: int,
    max_progress: int,
    target_ratio: float | tuple[float, ...] = (10, 1e-4),
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


def one_cycle_phases(
    total: int, pct_start: float, three_phase: bool, high: float, low_end: float
) -> list[tuple[float, float, float]]:
    """(end step, start factor, end factor) of each phase, as in mmcv's before_run."""
    if three_phase:
        return [
            (float(pct_start * total) - 1, 1, high),
            (float(2 * pct_start * total) - 2, high, 1),
            (total - 1, 1, low_end),
        ]
    return [(float(pct_start * total) - 1, 1, high), (total - 1, high, low_end)]


def _one_cycle_run_check(args: dict, max_progress: int) -> list[str]:
    total = args.get("total_steps")
    return (
        []
        if total is None or total >= max_progress
        else [f"total_steps: must be >= the {max_progress} optimizer steps of the run, got {total}"]
    )


_check_total_steps = arg_check("total_steps", optional(positive_int))


@policy(
    LR_POLICIES,
    "OneCycle",
    PolicySpec(
        needs_max=True,
        iter_only=True,
        per_group=("max_lr",),
        run_check=_one_cycle_run_check,
        check=all_of(
            check_per_group("max_lr", "a number"),
            _check_total_steps,
            check_unit("pct_start", 0.3),
            check_anneal,
        ),
    ),
)
def one_cycle(
    base: float,
    progress: int,
    max_progress: int,
    max_lr: float,
    total_steps: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> float:
    # mmcv ignores the optimizer's lr here: the schedule starts at max_lr / div_factor
    initial = max_lr / div_factor
    total = total_steps if total_steps is not None else max_progress
    start = 0
    for end, start_f, end_f in one_cycle_phases(
        total, pct_start, three_phase, div_factor, 1 / final_div_factor
    ):
        if progress <= end:
            return ANNEAL[anneal_strategy](
                initial * start_f, initial * end_f, (progress - start) / (end - start)
            )
        start = end
    return initial / final_div_factor  # unreachable: total_steps >= the run's steps
