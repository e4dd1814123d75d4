"""Schedule policies: pure functions of training progress, as in mmcv's lr_updater.py.

Each policy maps ``(base, progress, max_progress, **args)`` to the regular (post-warmup)
value of a hyper-parameter. ``progress`` is the epoch (``by_epoch=True``) or the
optimizer-step count (``by_epoch=False``). Being pure, they resume for free: nothing but
the counters has to be checkpointed. Policies are registered under mmcv's policy names
(``lr_config=dict(policy='step')`` -> ``'Step'``, ``'CosineAnnealing'``, ...).
"""
from __future__ import annotations

import math

from .registry import LR_POLICIES


def policy_key(policy: str) -> str:
    """mmcv's rule: an all-lower-case policy name is title-cased ('step' -> 'Step')."""
    return policy.title() if policy.islower() else policy


def annealing_cos(start: float, end: float, factor: float) -> float:
    """Cosine from ``start`` (factor 0) to ``end`` (factor 1)."""
    return end + 0.5 * (start - end) * (math.cos(math.pi * factor) + 1)


@LR_POLICIES.register_module(name="Fixed")
def fixed(base: float, progress: int, max_progress: int) -> float:
    return base


@LR_POLICIES.register_module(name="Step")
def step(base: float, progress: int, max_progress: int, step: int | list[int] = 1,
         gamma: float = 0.1, min_lr: float | None = None, min_momentum: float | None = None) -> float:
    if isinstance(step, int):
        exp = progress // step
    else:
        exp = len(step)
        for i, s in enumerate(step):
            if progress < s:
                exp = i
                break
    value = base * gamma**exp
    floor = min_lr if min_lr is not None else min_momentum
    return max(value, floor) if floor is not None else value


@LR_POLICIES.register_module(name="Exp")
def exp(base: float, progress: int, max_progress: int, gamma: float = 0.1) -> float:
    return base * gamma**progress


@LR_POLICIES.register_module(name="Poly")
def poly(base: float, progress: int, max_progress: int, power: float = 1.0,
         min_lr: float = 0.0) -> float:
    coeff = (1 - progress / max_progress) ** power
    return (base - min_lr) * coeff + min_lr


@LR_POLICIES.register_module(name="Inv")
def inv(base: float, progress: int, max_progress: int, gamma: float = 0.1,
        power: float = 1.0) -> float:
    return base * (1 + gamma * progress) ** (-power)


@LR_POLICIES.register_module(name="CosineAnnealing")
def cosine_annealing(base: float, progress: int, max_progress: int,
                     min_lr: float | None = None, min_lr_ratio: float | None = None,
                     min_momentum: float | None = None,
                     min_momentum_ratio: float | None = None) -> float:
    floor, ratio = (min_lr, min_lr_ratio) if min_momentum is None and min_momentum_ratio is None \
        else (min_momentum, min_momentum_ratio)
    target = base * ratio if ratio is not None else floor
    return annealing_cos(base, target, progress / max_progress)


def check_policy_args(policy: str, args: dict, path: str) -> list[str]:
    """Problems with a policy name or its arguments, as config-error lines."""
    from .errors import did_you_mean
    from .registry import accepted_arguments

    key = policy_key(policy) if isinstance(policy, str) else policy
    if key not in LR_POLICIES:
        return [f"{path}.policy: unknown policy '{policy}'{did_you_mean(key, LR_POLICIES.keys())} "
                f"(available: {', '.join(LR_POLICIES.keys())})"]
    fn = LR_POLICIES.get(key)
    names, _ = accepted_arguments(fn)
    names -= {"base", "progress", "max_progress"}
    problems = [f"{path}: unexpected argument '{k}' for policy '{policy}'{did_you_mean(k, names)} "
                f"(accepted: {', '.join(sorted(names)) or 'none'})"
                for k in args if k not in names]
    if key == "CosineAnnealing" and not problems:
        given = [k for k in ("min_lr", "min_lr_ratio", "min_momentum", "min_momentum_ratio") if k in args]
        if len(given) != 1:
            problems.append(f"{path}: CosineAnnealing needs exactly one of min_lr / min_lr_ratio "
                            f"(or min_momentum / min_momentum_ratio), got {given or 'none'}")
    return problems
