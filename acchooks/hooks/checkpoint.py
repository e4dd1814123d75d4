"""CheckpointHook: save the training state every ``interval`` epochs or iterations.

mmcv's options and defaults: ``interval`` (-1: only ``save_last``), ``by_epoch``
(``epoch_<N>`` or ``iter_<N>`` directories, N 1-based), ``save_optimizer`` (False: weights
only, which ``load_from`` can use but resume refuses), ``out_dir`` (as in mmcv >= 1.3.16,
checkpoints go to ``<out_dir>/<basename of work_dir>``; default the work dir),
``max_keep_ckpts`` (-1: keep all), ``save_last``.

Retention works from the checkpoints that exist in the directory (never from names
guessed from the interval), counts only complete ones, never removes the one just
saved, and runs only after the new checkpoint is committed, so even ``max_keep_ckpts=1``
keeps the previous complete checkpoint until the new one is in place. The runner does
the writing (main process, atomic directory, every process waits for the commit).
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

    def __init__(
        self,
        interval: int = -1,
        by_epoch: bool = True,
        save_optimizer: bool = True,
        out_dir: str | None = None,
        max_keep_ckpts: int = -1,
        save_last: bool = True,
    ):
        for name, value in (("interval", interval), ("max_keep_ckpts", max_keep_ckpts)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"checkpoint_config.{name}: expected an int, got {value!r}")
        if out_dir is not None and not isinstance(out_dir, str):
            raise ValueError(f"checkpoint_config.out_dir: expected a path, got {out_dir!r}")
        self.interval, self.by_epoch = interval, by_epoch
        self.save_optimizer, self.out_dir = save_optimizer, out_dir
        self.max_keep_ckpts, self.save_last = max_keep_ckpts, save_last

    def save_dir(self, runner) -> str:
        """Where the checkpoints go: the work dir, or ``<out_dir>/<work dir name>``."""
        if not self.out_dir:
            return runner.work_dir
        return os.path.join(self.out_dir, os.path.basename(runner.work_dir.rstrip(os.sep)))

    def before_run(self, runner) -> None:
        from ..checkpoint import prepare_work_dir

        # Leftovers of a killed save are never checkpoints; remove them before we save.
        if runner.is_main_process:
            prepare_work_dir(self.save_dir(runner), runner.logger)
            runner.logger.info(f"Checkpoints will be saved to {self.save_dir(runner)}")
        runner.accelerator.wait_for_everyone()

    def _save(self, runner, name: str) -> None:
        root = self.save_dir(runner)
        runner.save_checkpoint(name, out_dir=root, save_optimizer=self.save_optimizer)
        if self.max_keep_ckpts > 0:
            self._rotate(runner, root, name)

    def _rotate(self, runner, root: str, saved: str) -> None:
        """Keep the newest ``max_keep_ckpts`` complete ``<prefix>_<N>`` dirs, counting
        the one just saved (committed by now), removing the oldest by N."""
        from ..checkpoint import remove_checkpoint

        # Only the main process looks and deletes: others may see the directory mid-delete
        # (or not at all), and a per-removal barrier would then deadlock.
        if runner.is_main_process:
            prefix = saved.split("_")[0]
            pat = re.compile(rf"{prefix}_(\d+)")
            found = sorted(
                (int(m.group(1)), d)
                for d in os.listdir(root)
                if d != saved
                and (m := pat.fullmatch(d))
                and os.path.isfile(os.path.join(root, d, "manifest.json"))
            )
            for _, d in found[: max(len(found) - (self.max_keep_ckpts - 1), 0)]:
                remove_checkpoint(os.path.join(root, d))
        runner.accelerator.wait_for_everyone()

    def after_train_epoch(self, runner) -> None:
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval) or (
            self.save_last and self.is_last_epoch(runner)
        ):
            self._save(runner, f"epoch_{runner.epoch + 1}")

    def after_train_iter(self, runner) -> None:
        if self.by_epoch:
            return
        if self.every_n_iters(runner, self.interval) or (
            self.save_last and self.is_last_iter(runner)
        ):
            self._save(runner, f"iter_{runner.iter + 1}")
