"""TextLoggerHook: mmcv-style console/file lines and ``<timestamp>.log.json`` lines."""

from __future__ import annotations

import datetime
import json
import os
import time
from typing import TYPE_CHECKING, Any, TextIO

from ...registry import HOOKS
from .base import LoggerHook

if TYPE_CHECKING:
    from ...runner.runner import Runner


_HEAD = (
    "mode",
    "epoch",
    "iter",
    "step",
    "lr",
    "momentum",
    "eta",
    "time",
    "data_time",
    "samples/s",
    "memory",
)


@HOOKS.register_module()
class TextLoggerHook(LoggerHook):
    """Console lines like ``Epoch [1][50/391]\tlr: 1.000e-01, eta: 0:22:11, time: 0.074,
    data_time: 0.021, samples/s: 432.4, loss: 2.1234`` and one JSON object per record,
    floats unrounded. Every ``runner.hook_timing_log_every`` train lines (config
    ``hook_timing=dict(log_every=N)``), also the hook timing table so far."""

    def __init__(
        self,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        by_epoch: bool = True,
        interval_exp_name: int = 1000,
    ):
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.interval_exp_name = interval_exp_name
        self.json_path: str | None = None
        self._json: TextIO | None = None  # open for the run: one write and flush a line

    def before_run(self, runner: Runner) -> None:
        self.start_iter = runner.iter
        self.time_sec_tot = 0.0
        self.json_path = os.path.join(runner.work_dir, f"{runner.timestamp}.log.json")
        self._train_lines = 0
        if runner.is_main_process:
            self._close()
            self._json = open(self.json_path, "a")  # noqa: SIM115 - closed after the run
            self._write_json(json.dumps(runner.meta, default=str))

    def after_run(self, runner: Runner) -> None:
        super().after_run(runner)
        self._close()

    def _write_json(self, line: str) -> None:
        self._json.write(line + "\n")
        self._json.flush()  # a line is on disk (in the page cache) once it is logged

    def _close(self) -> None:
        if self._json is not None:
            self._json.close()
            self._json = None

    def log(self, runner: Runner, record: dict[str, Any]) -> None:
        if record["mode"] == "train" and "time" in record:
            self.time_sec_tot += record["time"] * self.interval
            done = max(runner.iter + 1 - self.start_iter, 1)
            eta = self.time_sec_tot / done * (runner.max_iters - runner.iter - 1)
            record = {**record, "eta": str(datetime.timedelta(seconds=int(eta)))}
            if runner.accelerator.device.type == "cuda":
                import torch

                mem = torch.cuda.max_memory_allocated(runner.accelerator.device) / 2**20
                record["memory"] = int(
                    runner.accelerator.reduce(
                        torch.tensor(mem, device=runner.accelerator.device), "max"
                    ).item()
                )
        if not runner.is_main_process:
            return
        runner.logger.info(self.format_line(runner, record))
        self._write_json(json.dumps({k: v for k, v in record.items() if k != "eta"}))
        if record["mode"] == "train":
            self._train_lines += 1
            every = getattr(runner, "hook_timing_log_every", 0)
            if every and self._train_lines % every == 0 and runner.hooks.timing_enabled:
                runner.logger.info(runner.hook_timing_report(top=10))

    @staticmethod
    def format_line(runner: Runner, r: dict[str, Any]) -> str:
        if r["mode"] == "train":
            head = (
                f"Epoch [{r['epoch']}][{r['iter']}/{runner.epoch_length}]\t"
                if runner.by_epoch
                else f"Iter [{r['iter']}/{runner.max_iters}]\t"
            )
            parts = [f"lr: {r['lr']:.3e}"] if "lr" in r else []
            parts += [f"eta: {r['eta']}"] if "eta" in r else []
            parts += [f"time: {r['time']:.3f}"] if "time" in r else []
            parts += [f"data_time: {r['data_time']:.3f}"] if "data_time" in r else []
            parts += [f"samples/s: {r['samples/s']:.1f}"] if "samples/s" in r else []
            parts += [f"memory: {r['memory']}"] if "memory" in r else []
        else:
            head = (
                f"Epoch({r['mode']}) [{r['epoch']}][{r['iter']}]\t"
                if runner.by_epoch
                else f"Iter({r['mode']}) [{r['iter']}]\t"
            )
            parts = []
        for k, v in r.items():
            if k in _HEAD:
                continue
            if k.startswith("lr_"):  # per-group lr, as the first group's
                parts.append(f"{k}: {v:.3e}")
                continue
            parts.append(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
        return head + ", ".join(parts)


def now_timestamp(work_dir: str | None = None) -> str:
    """mmcv's ``%Y%m%d_%H%M%S``, the name of a run's ``.log`` and ``.log.json``; with
    ``work_dir``, suffixed ``_2``, ``_3``, ... when a run of the same second already wrote
    its logs there (a run and its resume within one second), so no run appends to
    another's log."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
    if work_dir is None:
        return stamp
    name, n = stamp, 1
    while any(os.path.exists(os.path.join(work_dir, name + e)) for e in (".log", ".log.json")):
        n += 1
        name = f"{stamp}_{n}"
    return name
