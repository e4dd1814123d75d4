"""LrUpdaterHook and MomentumUpdaterHook: set a hyper-parameter of every param group
before each train iteration from a pure schedule policy plus optional warmup.

The value is recomputed from the counters every iteration (no hidden state), so a
resumed run gets exactly the values of an uninterrupted one. ``progress`` is the epoch
when ``by_epoch=True`` and the optimizer-step count otherwise; warmup always counts
optimizer steps (accumulation micro-steps and skipped fp16 steps do not count).
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..registry import HOOKS, LR_POLICIES
from ..schedules import check_policy_args, policy_key
from .hook import Hook
from .priority import Priority

WARMUPS = ("constant", "linear", "exp")


class _ParamSchedulerHook(Hook):
    def __init__(self, policy: str = "fixed", by_epoch: bool = True, warmup: str | None = None,
                 warmup_iters: int = 0, warmup_ratio: float = 0.1,
                 warmup_by_epoch: bool = False, **policy_args: Any):
        path = self._config_key
        problems = check_policy_args(policy, policy_args, path)
        if warmup is not None and warmup not in WARMUPS:
            problems.append(f"{path}.warmup: '{warmup}' is not supported; use one of {WARMUPS} or None")
        if warmup is not None and not warmup_iters > 0:
            problems.append(f"{path}.warmup_iters: must be a positive integer when warmup is set, got {warmup_iters}")
        if not 0 < warmup_ratio <= 1.0:
            problems.append(f"{path}.warmup_ratio: must be in (0, 1], got {warmup_ratio}")
        if problems:
            raise ConfigError(problems)
        self.policy = policy
        self.fn = LR_POLICIES.get(policy_key(policy))
        self.policy_args = policy_args
        self.by_epoch = by_epoch
        self.warmup = warmup
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.warmup_by_epoch = warmup_by_epoch
        self.base_values: list[float] = []

    # subclasses: which group key, how warmup scales
    _config_key = ""

    def _get(self, group: dict) -> float:
        raise NotImplementedError

    def _set(self, group: dict, value: float) -> None:
        raise NotImplementedError

    def _warmup(self, regular: float, cur: int, total: int) -> float:
        raise NotImplementedError

    def before_run(self, runner) -> None:
        groups = runner.optimizer.param_groups
        key = f"initial_{self._config_key.split('_')[0]}"
        for g in groups:  # remember the configured values once, like mmcv's initial_lr
            g.setdefault(key, self._get(g))
        self.base_values = [g[key] for g in groups]

    def values_at(self, step: int, epoch: int, steps_per_epoch: int, max_steps: int,
                  max_epochs: int | None) -> list[float]:
        """The value for every param group at a point of training (pure)."""
        if self.by_epoch:
            progress, max_progress = epoch, max_epochs
        else:
            progress, max_progress = step, max_steps
        regular = [self.fn(b, progress, max_progress, **self.policy_args) for b in self.base_values]
        warmup_iters = self.warmup_iters * steps_per_epoch if self.warmup_by_epoch else self.warmup_iters
        if self.warmup is None or step >= warmup_iters:
            return regular
        return [self._warmup(r, step, warmup_iters) for r in regular]

    def before_train_iter(self, runner) -> None:
        values = self.values_at(runner.step, runner.epoch, runner.steps_per_epoch,
                                runner.max_steps, runner.max_epochs)
        for g, v in zip(runner.optimizer.param_groups, values, strict=True):
            self._set(g, v)


@HOOKS.register_module()
class LrUpdaterHook(_ParamSchedulerHook):
    """``lr_config=dict(policy='step', step=[30, 60], gamma=0.1, warmup='linear', ...)``."""

    priority = Priority.VERY_HIGH
    _config_key = "lr_config"

    def _get(self, group: dict) -> float:
        return group["lr"]

    def _set(self, group: dict, value: float) -> None:
        group["lr"] = value

    def _warmup(self, regular: float, cur: int, total: int) -> float:
        if self.warmup == "constant":
            return regular * self.warmup_ratio
        if self.warmup == "linear":
            return regular * (1 - (1 - cur / total) * (1 - self.warmup_ratio))
        return regular * self.warmup_ratio ** (1 - cur / total)


@HOOKS.register_module()
class MomentumUpdaterHook(_ParamSchedulerHook):
    """``momentum_config=dict(policy='CosineAnnealing', min_momentum_ratio=..)``: SGD
    ``momentum`` or Adam-family ``betas[0]``. Warmup divides, as in mmcv."""

    priority = Priority.HIGH
    _config_key = "momentum_config"

    def before_run(self, runner) -> None:
        g0 = runner.optimizer.param_groups[0]
        if "momentum" not in g0 and "betas" not in g0:
            raise ConfigError(f"momentum_config: optimizer {type(runner.optimizer).__name__} has "
                              f"neither 'momentum' nor 'betas'; remove momentum_config")
        super().before_run(runner)

    def _get(self, group: dict) -> float:
        return group["betas"][0] if "betas" in group else group["momentum"]

    def _set(self, group: dict, value: float) -> None:
        if "betas" in group:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _warmup(self, regular: float, cur: int, total: int) -> float:
        if self.warmup == "constant":
            return regular / self.warmup_ratio
        if self.warmup == "linear":
            return regular / (1 - (1 - cur / total) * (1 - self.warmup_ratio))
        return regular / self.warmup_ratio ** (1 - cur / total)
