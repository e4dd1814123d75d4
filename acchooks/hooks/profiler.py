"""ProfilerHook: ``torch.profiler`` over the first iterations or epochs (mmcv's arguments).

``custom_hooks = [dict(type='ProfilerHook', by_epoch=False, profile_iters=3,
json_trace_path='trace.json')]`` profiles the first 3 train iterations and writes a
Chrome trace (chrome://tracing, Perfetto). ``on_trace_ready=dict(type='tb_trace',
dir_name='tb_trace')`` writes TensorBoard profiler traces instead (view them with the
``torch-tb-profiler`` plugin); ``dict(type='log_trace', sort_by='self_cpu_time_total',
row_limit=20)`` logs the op table. Relative paths are under the work dir. Only the main
process profiles.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..config.checks import int_at_least, non_negative_int, one_of, positive_int, problems_of
from ..config.optionset import Option, OptionSet
from ..errors import ConfigError, did_you_mean
from ..registry import HOOKS
from .hook import Hook
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


ACTIVITIES = {
    "cpu": torch.profiler.ProfilerActivity.CPU,
    "cuda": torch.profiler.ProfilerActivity.CUDA,
}
TRACE_TYPES = ("tb_trace", "log_trace")
SCHEDULE = OptionSet(  # torch.profiler.schedule's arguments
    "ProfilerHook.schedule",
    [
        Option("wait", non_negative_int, required=True),
        Option("warmup", non_negative_int, required=True),
        Option("active", positive_int, required=True),
        Option("repeat", non_negative_int, 0, "0: until the profiler stops"),
        Option("skip_first", non_negative_int, 0),
    ],
)


@HOOKS.register_module()
class ProfilerHook(Hook):
    """``custom_hooks=[dict(type='ProfilerHook', ...)]``: ``torch.profiler`` over chosen train
    iterations, with mmcv's arguments (see the module docstring)."""

    priority = Priority.NORMAL

    def __init__(
        self,
        by_epoch: bool = True,
        profile_iters: int = 1,
        activities: list[str] | tuple[str, ...] = ("cpu", "cuda"),
        schedule: dict | None = None,
        on_trace_ready: Callable | dict | None = None,
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        with_flops: bool = False,
        json_trace_path: str | None = None,
    ):
        problems = problems_of((int_at_least(1), profile_iters, "ProfilerHook.profile_iters"))
        for a in activities:
            if a not in ACTIVITIES:
                problems.append(
                    f"ProfilerHook.activities: unknown activity '{a}'"
                    f"{did_you_mean(a, ACTIVITIES)} (accepted: {', '.join(ACTIVITIES)})"
                )
        if schedule is not None:
            problems += SCHEDULE.problems(schedule)
        if isinstance(on_trace_ready, dict):
            trace_type = on_trace_ready.get("type")
            problems += problems_of(
                (one_of(TRACE_TYPES), trace_type, "ProfilerHook.on_trace_ready.type")
            )
        elif not (on_trace_ready is None or callable(on_trace_ready)):
            problems.append(
                f"ProfilerHook.on_trace_ready: expected a callable, a dict or None, "
                f"got {on_trace_ready!r}"
            )
        if problems:
            raise ConfigError(problems)
        self.by_epoch, self.profile_iters = by_epoch, profile_iters
        self.activities, self.schedule = list(activities), schedule
        self.on_trace_ready = on_trace_ready
        self.record_shapes, self.profile_memory = record_shapes, profile_memory
        self.with_stack, self.with_flops = with_stack, with_flops
        self.json_trace_path = json_trace_path
        self.profiler: torch.profiler.profile | None = None

    def _trace_handler(self, runner: Runner) -> Callable | None:
        if callable(self.on_trace_ready) or self.on_trace_ready is None:
            return self.on_trace_ready
        cfg: dict[str, Any] = dict(self.on_trace_ready)
        kind = cfg.pop("type")
        if kind == "log_trace":
            return lambda prof: runner.logger.info("\n" + prof.key_averages().table(**cfg))
        cfg["dir_name"] = os.path.join(runner.work_dir, cfg.get("dir_name", "tb_trace"))
        return torch.profiler.tensorboard_trace_handler(**cfg)

    def before_run(self, runner: Runner) -> None:
        if not runner.is_main_process:
            return
        limit = runner.max_epochs if self.by_epoch else runner.max_iters
        if limit < self.profile_iters:
            raise ConfigError(
                f"ProfilerHook.profile_iters: {self.profile_iters} is more than the "
                f"run's {limit} {'epochs' if self.by_epoch else 'iterations'}"
            )
        activities = [ACTIVITIES[a] for a in self.activities]
        if "cuda" in self.activities and not torch.cuda.is_available():
            activities.remove(ACTIVITIES["cuda"])  # the default ['cpu', 'cuda'] works on CPU
        self.profiler = torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(**self.schedule) if self.schedule else None,
            on_trace_ready=self._trace_handler(runner),
            record_shapes=self.record_shapes,
            profile_memory=self.profile_memory,
            with_stack=self.with_stack,
            with_flops=self.with_flops,
        )
        self.profiler.__enter__()
        runner.logger.info(
            f"profiler is profiling the first {self.profile_iters} "
            f"{'epochs' if self.by_epoch else 'iterations'}"
        )

    def _stop(self, runner: Runner) -> None:
        runner.logger.info("profiler may take a few minutes to write its trace...")
        self.profiler.__exit__(None, None, None)
        if self.json_trace_path is not None:
            path = os.path.join(runner.work_dir, self.json_trace_path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.profiler.export_chrome_trace(path)
            runner.logger.info(f"profiler trace written to {path}")
        self.profiler = None

    def after_train_iter(self, runner: Runner) -> None:
        if self.profiler is None:
            return
        self.profiler.step()
        if not self.by_epoch and runner.iter + 1 == self.profile_iters:
            self._stop(runner)

    def after_train_epoch(self, runner: Runner) -> None:
        if self.profiler is not None and self.by_epoch and runner.epoch + 1 == self.profile_iters:
            self._stop(runner)

    def after_run(self, runner: Runner) -> None:
        if self.profiler is not None:  # a run shorter than asked (resume): still write it
            self._stop(runner)
