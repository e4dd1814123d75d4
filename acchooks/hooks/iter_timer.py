"""IterTimerHook: ``data_time`` (waiting for the batch), ``time`` (the whole iteration)
and ``samples/s`` (throughput of all processes together).

``samples/s`` is the batch of this process x the number of processes / ``time``. It goes
into the log buffer weighted by the iteration's time, so the logged average over an
interval is (samples in the interval) / (time of the interval), not a mean of rates.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from ..registry import HOOKS
from .hook import Hook
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


def batch_size(batch: Any) -> int | None:
    """Samples in a batch: the first dimension of its first tensor (``(inputs, targets)``,
    a dict of tensors, or a tensor); None when there is no tensor."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else None
    if isinstance(batch, (list, tuple)):
        for item in batch:
            n = batch_size(item)
            if n is not None:
                return n
        return None
    if isinstance(batch, dict):
        for item in batch.values():
            n = batch_size(item)
            if n is not None:
                return n
    return None


@HOOKS.register_module()
class IterTimerHook(Hook):
    """Records ``time``, ``data_time`` and ``samples/s`` in the log buffer for the loggers
    (see the module docstring); registered by default."""

    priority = Priority.LOW
    num_processes = 1  # set from the accelerator when the run starts

    def before_run(self, runner: Runner) -> None:
        self.num_processes = runner.accelerator.num_processes

    def before_epoch(self, runner: Runner) -> None:
        self.t = time.perf_counter()

    # the stages themselves, not the generic before_iter/after_iter: one call less each
    def before_train_iter(self, runner: Runner) -> None:
        self.t_data = time.perf_counter() - self.t

    before_val_iter = before_train_iter

    def after_train_iter(self, runner: Runner) -> None:
        now = time.perf_counter()
        dt = now - self.t
        add = runner.log_buffer.add  # one value each: no dict built per iteration
        add("data_time", self.t_data)
        add("time", dt)
        n = runner.outputs.get("num_samples")
        if n is None:
            n = batch_size(runner.data_batch)
        if n and dt > 0:
            add("samples/s", n * self.num_processes / dt, dt)
        self.t = now

    after_val_iter = after_train_iter
