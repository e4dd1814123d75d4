"""TensorboardLoggerHook: scalars under ``<work_dir>/tf_logs`` (mmcv's default), tagged
``train/loss``, ``val/accuracy_top-1``, ``learning_rate``, ``momentum``; the x axis is the
global train iteration."""
from __future__ import annotations

import os
from typing import Any

from ...registry import HOOKS
from .base import LoggerHook

_SKIP = ("mode", "epoch", "iter", "step", "lr", "momentum", "time", "data_time")


@HOOKS.register_module()
class TensorboardLoggerHook(LoggerHook):
    def __init__(self, log_dir: str | None = None, interval: int = 10, ignore_last: bool = True,
                 reset_flag: bool = False, by_epoch: bool = True):
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.log_dir = log_dir
        self.writer = None

    def before_run(self, runner) -> None:
        if runner.is_main_process:
            from torch.utils.tensorboard import SummaryWriter
            self.log_dir = self.log_dir or os.path.join(runner.work_dir, "tf_logs")
            # a resumed run drops what an interrupted run logged after its checkpoint
            self.writer = SummaryWriter(self.log_dir, purge_step=runner.iter + 1 if runner.iter else None)

    def log(self, runner, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = runner.iter + 1 if record["mode"] == "train" and runner.mode == "train" else runner.iter
        for k, v in record.items():
            if k in _SKIP or not isinstance(v, (int, float)):
                continue
            self.writer.add_scalar(f"{record['mode']}/{k}", v, step)
        if record["mode"] == "train":
            if "lr" in record:
                self.writer.add_scalar("learning_rate", record["lr"], step)
            if "momentum" in record:
                self.writer.add_scalar("momentum", record["momentum"], step)

    def after_run(self, runner) -> None:
        super().after_run(runner)
        if self.writer is not None:
            self.writer.close()
