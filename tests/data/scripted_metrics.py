"""A test stand-in for EvalHook (loaded through ``custom_imports``): after each train epoch
it hands every hook a scripted metric, through the same protocol method EvalHook calls, so
what EarlyStoppingHook and the plateau LR policy see is known exactly, in a resumed run too
(the value is a function of the epoch only)."""

from __future__ import annotations

from acchooks import HOOKS, Hook
from acchooks.hooks.priority import Priority


@HOOKS.register_module(force=True)
class ScriptedMetrics(Hook):
    """``values[k]`` as ``key`` after train epoch k + 1, at EvalHook's priority (LOW)."""

    priority = Priority.LOW

    def __init__(self, values: list[float], key: str = "accuracy_top-1"):
        self.values, self.key = list(values), key

    def after_train_epoch(self, runner) -> None:
        results = {self.key: float(self.values[runner.epoch]), "loss": 1.0}
        runner.log_buffer.put(results, mode="val")
        for hook in runner.hooks.hooks:
            hook.evaluation_results(runner, results)
