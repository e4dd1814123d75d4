"""IterTimerHook: ``data_time`` (waiting for the batch) and ``time`` (the whole iteration)."""
from __future__ import annotations

import time

from ..registry import HOOKS
from .hook import Hook
from .priority import Priority


@HOOKS.register_module()
class IterTimerHook(Hook):
    priority = Priority.LOW

    def before_epoch(self, runner) -> None:
        self.t = time.perf_counter()

    def before_iter(self, runner) -> None:
        runner.log_buffer.update({"data_time": time.perf_counter() - self.t})

    def after_iter(self, runner) -> None:
        runner.log_buffer.update({"time": time.perf_counter() - self.t})
        self.t = time.perf_counter()
