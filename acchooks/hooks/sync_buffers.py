"""SyncBuffersHook: make buffers (BatchNorm running statistics) equal on every process.

``custom_hooks = [dict(type='SyncBuffersHook')]``. Each process updates its BatchNorm
statistics from its own data shard, so after an epoch they differ; mmcv's hook
all-reduces them at the end of every epoch (train and val), and so does this one, with
one collective per dtype rather than one per buffer. ``mode='mean'`` (mmcv) averages
floating buffers and takes integer ones (``num_batches_tracked``) from rank 0;
``mode='broadcast'`` takes every buffer from rank 0 (timm's ``distribute_bn`` default).
In a single process it does nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import torch
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from ..config.checks import one_of
from ..registry import HOOKS
from .hook import Hook
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


MODES = ("mean", "broadcast")


@HOOKS.register_module()
class SyncBuffersHook(Hook):
    """``custom_hooks=[dict(type='SyncBuffersHook')]``: make every process's buffers
    (BatchNorm statistics) equal after each epoch, by mean or broadcast from rank 0."""

    priority = Priority.NORMAL

    def __init__(self, distributed: bool = True, mode: str = "mean"):
        one_of(MODES)(mode, "SyncBuffersHook.mode")
        self.distributed, self.mode = distributed, mode

    def after_epoch(self, runner: Runner) -> None:
        if self.distributed and runner.accelerator.num_processes > 1:
            sync_buffers(runner.unwrapped_model, self.mode)


@torch.no_grad()
def sync_buffers(model: torch.nn.Module, mode: str = "mean") -> None:
    """Make ``model``'s buffers equal across processes (every process must call it)."""
    from accelerate.utils import broadcast, reduce

    groups: dict[tuple, list[torch.Tensor]] = defaultdict(list)
    for b in model.buffers():
        groups[(b.dtype, b.device)].append(b)
    # the same order on every process: buffers come in module order, groups by first use
    for (dtype, _), bufs in groups.items():
        flat = _flatten_dense_tensors(bufs)
        if mode == "mean" and dtype.is_floating_point:
            flat = reduce(flat, "mean")
        else:
            flat = broadcast(flat, from_process=0)
        for b, synced in zip(bufs, _unflatten_dense_tensors(flat, bufs), strict=True):
            b.copy_(synced)
