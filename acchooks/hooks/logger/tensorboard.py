"""TensorboardLoggerHook: scalars under ``<work_dir>/tf_logs`` (mmcv's default), tagged
``train/loss``, ``val/accuracy_top-1``, ``learning_rate``, ``momentum``; the x axis is the
global train iteration."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ...registry import HOOKS
from .base import LoggerHook, global_step, scalar_tags

if TYPE_CHECKING:
    from ...runner.runner import Runner


@HOOKS.register_module()
class TensorboardLoggerHook(LoggerHook):
    """``log_config.hooks=[dict(type='TensorboardLoggerHook')]``: the records as TensorBoard
    scalars under ``<work_dir>/tf_logs`` (or ``log_dir``), main process only."""

    def __init__(
        self,
        log_dir: str | None = None,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        by_epoch: bool = True,
    ):
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.log_dir = log_dir
        self.writer = None

    def before_run(self, runner: Runner) -> None:
        if runner.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            self.log_dir = self.log_dir or os.path.join(runner.work_dir, "tf_logs")
            # a resumed run drops what an interrupted run logged after its checkpoint
            self.writer = SummaryWriter(
                self.log_dir, purge_step=runner.iter + 1 if runner.iter else None
            )

    def log(self, runner: Runner, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = global_step(runner)
        for tag, value in scalar_tags(record).items():
            self.writer.add_scalar(tag, value, step)

    def after_run(self, runner: Runner) -> None:
        super().after_run(runner)
        if self.writer is not None:
            self.writer.close()
