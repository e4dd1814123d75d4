"""EarlyStoppingHook: stop training when a validation metric stops improving.

``custom_hooks=[dict(type='EarlyStoppingHook', monitor='accuracy_top-1', patience=3)]``.
mmengine's arguments: ``monitor`` (a key of the evaluation results), ``rule``
(``'greater'``/``'less'``, inferred from the name as EvalHook does when omitted),
``patience`` (evaluations without improvement before stopping), ``min_delta`` (an
improvement must beat the best by more than this; an equal score is no improvement),
``strict`` (a monitor key the evaluation does not compute is an error; False: a warning
and the evaluation is ignored), ``check_finite`` (stop at a NaN/inf score),
``stopping_threshold`` (stop as soon as the score is better than this).

It is fed by EvalHook through :meth:`Hook.evaluation_results`, at EvalHook's
``after_train_epoch`` (``after_train_iter`` for iteration-based evaluation). The metrics
are gathered from every process before, so each process takes the same decision; a stop
goes through :meth:`Runner.request_stop`: the run ends after the current epoch (or
iteration) as if ``max_epochs`` (``max_iters``) were reached, ``after_run`` runs, and
``CheckpointHook(save_last=True)`` saves the last checkpoint if it runs after the
evaluation (see docs/hooks.md on the order).

Its state (best score, wait count, where it stopped and why) is checkpointed, unlike
mmengine's: a run resumed from a checkpoint holding every evaluation before it stops where
the uninterrupted run stops, and a resumed run that had already stopped ends at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config.checks import boolean, number, optional, positive_int, problems_of
from ..errors import ConfigError
from ..registry import HOOKS
from .hook import Hook
from .monitor import MetricMonitor

if TYPE_CHECKING:
    from ..runner.runner import Runner

_PATH = "EarlyStoppingHook"


@HOOKS.register_module()
class EarlyStoppingHook(Hook):
    """``dict(type='EarlyStoppingHook', monitor='accuracy_top-1', patience=3)``: request a
    stop when ``monitor`` has not improved for ``patience`` evaluations (module doc)."""

    def __init__(
        self,
        monitor: str,
        rule: str | None = None,
        patience: int = 5,
        min_delta: float = 0.0,
        strict: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
    ):
        problems = problems_of(
            (positive_int, patience, f"{_PATH}.patience"),
            (boolean, strict, f"{_PATH}.strict"),
            (boolean, check_finite, f"{_PATH}.check_finite"),
            (optional(number), stopping_threshold, f"{_PATH}.stopping_threshold"),
        )
        if problems:
            raise ConfigError(problems)
        self.tracker = MetricMonitor(monitor, rule, min_delta, "abs", path=_PATH)
        self.patience, self.min_delta = patience, min_delta
        self.strict, self.check_finite = strict, check_finite
        self.stopping_threshold = stopping_threshold
        self.wait_count = 0
        self.best_at: int | None = None  # the epoch (iteration) of the best score, 1-based
        self.stopped_at: int | None = None  # where it stopped, 1-based
        self.reason: str | None = None
        self._seen = self._warned = False

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "custom_hooks") -> list[str]:
        """Every problem of the hook's arguments, before anything is built (the config
        check): names first (did-you-mean), then values."""
        from ..config.arguments import check_args

        problems = check_args(cls, cfg, path, cls.__name__)
        if problems:
            return problems
        try:
            cls(**cfg)
        except ConfigError as e:
            return [f"{path}: {p}" for p in e.problems]
        return []

    @staticmethod
    def _position(runner: Runner) -> tuple[str, int]:
        return ("epoch", runner.epoch + 1) if runner.by_epoch else ("iter", runner.iter + 1)

    def before_run(self, runner: Runner) -> None:
        if self.stopped_at is not None:  # resumed from a checkpoint saved after the stop
            unit = "epoch" if runner.by_epoch else "iter"
            runner.logger.info(
                f"EarlyStoppingHook: the resumed run had stopped early after {unit} "
                f"{self.stopped_at} ({self.reason}); nothing left to train"
            )
            runner.request_stop(self.reason or "early stopping")

    def evaluation_results(self, runner: Runner, results: dict[str, float]) -> None:
        if self.stopped_at is not None:
            return
        score = self.tracker.read(results, strict=self.strict)
        if score is None:
            if not self._warned:
                runner.logger.warning(f"{self.tracker.missing(results)}; not monitoring it")
                self._warned = True
            return
        self._seen = True
        unit, position = self._position(runner)
        reason = self._reason(score, unit, position)
        if reason is None:
            return
        self.stopped_at, self.reason = position, reason
        runner.logger.info(f"Early stopping after {unit} {position}: {reason}")
        runner.request_stop(reason)

    def _reason(self, score: float, unit: str, position: int) -> str | None:
        """Fold ``score`` in; why to stop now, or None."""
        t, name = self.tracker, self.tracker.monitor
        if self.check_finite and not math.isfinite(score):
            return f"{name} = {score} is not finite (best {t.best})"
        threshold = self.stopping_threshold
        if threshold is not None and t.beyond(score, threshold):
            if t.update(score):
                self.best_at = position
            self.wait_count = 0
            return f"{name} = {score:.4f} is {t.rule} than stopping_threshold={threshold}"
        if t.update(score):
            self.wait_count, self.best_at = 0, position
            return None
        self.wait_count += 1
        if self.wait_count < self.patience:
            return None
        return (
            f"{name} did not improve by more than min_delta={self.min_delta} in "
            f"{self.wait_count} evaluations (best {t.best:.4f} after {unit} {self.best_at})"
        )

    def after_run(self, runner: Runner) -> None:
        if not self._seen and self.stopped_at is None and not self._warned:
            runner.logger.warning(
                f"EarlyStoppingHook: no evaluation results arrived during the run, so "
                f"'{self.tracker.monitor}' was never checked; set evaluation=dict(interval=1, "
                f"metric=...) for it to monitor"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.tracker.monitor,
            **self.tracker.state_dict(),
            "wait_count": self.wait_count,
            "best_at": self.best_at,
            "stopped_at": self.stopped_at,
            "reason": self.reason,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("monitor", self.tracker.monitor) != self.tracker.monitor:
            return  # another metric is monitored now: its count starts afresh
        self.tracker.load_state_dict(state)
        self.wait_count = int(state.get("wait_count", 0))
        self.best_at, self.stopped_at = state.get("best_at"), state.get("stopped_at")
        self.reason = state.get("reason")
