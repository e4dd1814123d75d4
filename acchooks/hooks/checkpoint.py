"""CheckpointHook: save the training state every ``interval`` epochs or iterations.

mmcv's options: ``interval``, ``by_epoch``, ``save_optimizer`` (False: weights only),
``out_dir``, ``max_keep_ckpts`` (retention over the checkpoints that exist, oldest
removed only after the new one is committed), ``save_last``. The runner does the
writing (main process, atomic directory, every process waits for the commit).
"""
from __future__ import annotations

import os
import re

from ..registry import HOOKS
from .hook import Hook
from .priority import Priority


@HOOKS.register_module()
class CheckpointHook(Hook):
    priority = Priority.NORMAL

    def __init__(self, interval: int = -1, by_epoch: bool = True, save_optimizer: bool = True,
                 out_dir: str | None = None, max_keep_ckpts: int = -1, save_last: bool = True):
        if not isinstance(interval, int):
            raise ValueError(f"checkpoint_config.interval: expected an int, got {interval!r}")
        self.interval, self.by_epoch = interval, by_epoch
        self.save_optimizer, self.out_dir = save_optimizer, out_dir
        self.max_keep_ckpts, self.save_last = max_keep_ckpts, save_last

    def _save(self, runner, name: str) -> None:
        runner.save_checkpoint(name, out_dir=self.out_dir, save_optimizer=self.save_optimizer)
        if self.max_keep_ckpts > 0:
            self._rotate(runner, name.split("_")[0])

    def _rotate(self, runner, prefix: str) -> None:
        """Keep the newest ``max_keep_ckpts`` of the ``<prefix>_<N>`` dirs that exist."""
        root = self.out_dir or runner.work_dir
        pat = re.compile(rf"^{prefix}_(\d+)$")
        found = sorted((int(m.group(1)), d) for d in os.listdir(root)
                       if (m := pat.match(d)) and os.path.isdir(os.path.join(root, d)))
        for _, d in found[:-self.max_keep_ckpts]:
            runner.remove_checkpoint(os.path.join(root, d))

    def after_train_epoch(self, runner) -> None:
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval) or (self.save_last and self.is_last_epoch(runner)):
            self._save(runner, f"epoch_{runner.epoch + 1}")

    def after_train_iter(self, runner) -> None:
        if self.by_epoch:
            return
        if self.every_n_iters(runner, self.interval) or (self.save_last and self.is_last_iter(runner)):
            self._save(runner, f"iter_{runner.iter + 1}")
