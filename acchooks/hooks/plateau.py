"""ReduceLROnPlateauLrUpdaterHook: the LrUpdaterHook of ``policy='ReduceLROnPlateau'``.

``lr_config=dict(policy='ReduceLROnPlateau', monitor='accuracy_top-1', factor=0.1,
patience=2, cooldown=0, min_lr=1e-5)`` builds it (so does ``type=`` with this name, in
``lr_config`` or ``custom_hooks``). torch's ``ReduceLROnPlateau`` logic, step by step, at
every evaluation EvalHook reports through :meth:`Hook.evaluation_results`:

* the score improves on the best when it is better by more than ``threshold`` (relative,
  ``threshold_rule='rel'``: ``best * (1 + threshold)`` for ``rule='greater'``) or by more
  than ``min_delta`` / ``threshold`` with ``threshold_rule='abs'``; else one more bad
  evaluation;
* during ``cooldown`` evaluations after a reduction the bad count stays 0;
* more than ``patience`` bad evaluations in a row: every param group's LR is multiplied by
  ``factor``, never below ``min_lr`` (a list: one per group), and not at all when it would
  change by ``eps`` or less.

A reduction decided at an epoch's evaluation applies from the next train iteration on (the
next epoch); warmup applies on top as for every policy. The state (best, bad count,
cooldown, reductions per group) is checkpointed, so a run resumed from a checkpoint holding
every evaluation before it gets the LRs of the uninterrupted run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..registry import HOOKS
from ..schedules.plateau import plateau_args, reduced_lr
from .monitor import MetricMonitor
from .param_scheduler import LrUpdaterHook

if TYPE_CHECKING:
    from ..runner.runner import Runner


@HOOKS.register_module()
class ReduceLROnPlateauLrUpdaterHook(LrUpdaterHook):
    """``lr_config=dict(policy='ReduceLROnPlateau', monitor=..., factor=0.1, patience=10)``:
    lower the LR when ``monitor`` stalls (module docstring)."""

    policy_name = "ReduceLROnPlateau"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)  # checks every argument (schedules/plateau.py)
        a = plateau_args(self.policy_args)
        if a["min_delta"] is not None:
            delta, delta_rule = a["min_delta"], "abs"
        else:
            delta, delta_rule = a["threshold"], a["threshold_rule"]
        self.tracker = MetricMonitor(a["monitor"], a["rule"], delta, delta_rule, "lr_config")
        self.factor, self.patience = a["factor"], a["patience"]
        self.cooldown, self.eps = a["cooldown"], a["eps"]
        self.num_bad = self.cooldown_counter = 0
        self.reductions: list[int] = []  # per param group

    def before_run(self, runner: Runner) -> None:
        super().before_run(runner)
        n = len(self.base_values)
        if not self.reductions:
            self.reductions = [0] * n
        elif len(self.reductions) != n:
            raise ConfigError(
                f"lr_config (ReduceLROnPlateau): the checkpoint counts reductions for "
                f"{len(self.reductions)} param groups, the optimizer has {n}"
            )

    def _min_lrs(self) -> list[float]:
        return [a.get("min_lr", 0.0) for a in self.group_args]

    def _regular(self, progress: int, max_progress: int | None) -> list[float]:
        counts = self.reductions or [0] * len(self.base_values)
        return [
            reduced_lr(b, k, self.factor, m)
            for b, k, m in zip(self.base_values, counts, self._min_lrs(), strict=True)
        ]

    def evaluation_results(self, runner: Runner, results: dict[str, float]) -> None:
        score = self.tracker.read(results)
        if self.tracker.update(score):
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            self._reduce(runner)
            self.cooldown_counter, self.num_bad = self.cooldown, 0

    def _reduce(self, runner: Runner) -> None:
        """One more reduction for every group whose LR changes by more than ``eps``."""
        lowered = []
        pairs = zip(self.base_values, self._min_lrs(), strict=True)
        for i, (base, min_lr) in enumerate(pairs):
            old = reduced_lr(base, self.reductions[i], self.factor, min_lr)
            new = reduced_lr(base, self.reductions[i] + 1, self.factor, min_lr)
            if old - new > self.eps:
                self.reductions[i] += 1
                lowered.append(f"{new:.4g}")
        self._last_key = None  # recompute at the next iteration, whatever the counters
        name = self.tracker.monitor
        what = f"lr lowered to {', '.join(lowered)}" if lowered else "lr already at min_lr"
        runner.logger.info(
            f"ReduceLROnPlateau: {name} did not improve for more than {self.patience} "
            f"evaluations (best {self.tracker.best}); {what}"
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.tracker.state_dict(),
            "num_bad": self.num_bad,
            "cooldown_counter": self.cooldown_counter,
            "reductions": list(self.reductions),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state)
        self.num_bad = int(state.get("num_bad", 0))
        self.cooldown_counter = int(state.get("cooldown_counter", 0))
        self.reductions = [int(k) for k in state.get("reductions", [])]
