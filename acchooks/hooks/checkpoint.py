"""CheckpointHook: save the training state every ``interval`` epochs or iterations.

mmcv's options and defaults: ``interval`` (-1: only ``save_last``), ``by_epoch``
(``epoch_<N>`` or ``iter_<N>`` directories, N 1-based), ``save_optimizer`` (False: weights
only, which ``load_from`` can use but resume refuses), ``out_dir`` (as in mmcv >= 1.3.16,
checkpoints go to ``<out_dir>/<basename of work_dir>``; default the work dir),
``max_keep_ckpts`` (-1: keep all), ``save_last``.

Retention works from the checkpoints that exist in the directory (never from names
guessed from the interval), counts only complete ones, never removes the one just
saved, and runs only after the new checkpoint is committed, so even ``max_keep_ckpts=1``
keeps the previous complete checkpoint until the new one is in place; it never removes the
newest checkpoint with finite weights (the one ``latest`` names), so a NaN streak cannot
rotate the last good checkpoint away. This hook only
decides *when*; the runner's Checkpointer writes (main process, atomic directory, every
process waits for the commit), keeps the directory and rotates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..registry import HOOKS
from .hook import Hook
from .options import CHECKPOINT_CONFIG
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


@HOOKS.register_module()
class CheckpointHook(Hook):
    """``checkpoint_config=dict(interval=1, max_keep_ckpts=3)``: when to save (see the
    module docstring); the runner's Checkpointer does the saving."""

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
        CHECKPOINT_CONFIG.check(
            dict(
                interval=interval,
                by_epoch=by_epoch,
                save_optimizer=save_optimizer,
                out_dir=out_dir,
                max_keep_ckpts=max_keep_ckpts,
                save_last=save_last,
            )
        )
        self.interval, self.by_epoch = interval, by_epoch
        self.save_optimizer, self.out_dir = save_optimizer, out_dir
        self.max_keep_ckpts, self.save_last = max_keep_ckpts, save_last

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "checkpoint_config") -> list[str]:
        """Every problem of ``checkpoint_config``, found before anything is built."""
        return CHECKPOINT_CONFIG.problems(cfg, path)

    def checkpoint_out_dir(self) -> str | None:
        return self.out_dir

    def before_run(self, runner: Runner) -> None:
        # Leftovers of a killed save are never checkpoints; remove them before we save.
        runner.checkpointer.prepare()

    def after_run(self, runner: Runner) -> None:
        # Weights gone NaN/inf: said loudly (an error under optimizer_config.nonfinite='raise').
        runner.checkpointer.finish()

    def _save(self, runner: Runner, name: str) -> None:
        path = runner.checkpointer.save(name, weights_only=not self.save_optimizer)
        if self.max_keep_ckpts > 0:
            runner.checkpointer.retain(path, self.max_keep_ckpts)

    def after_train_epoch(self, runner: Runner) -> None:
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval) or (
            self.save_last and self.is_last_epoch(runner)
        ):
            self._save(runner, f"epoch_{runner.epoch + 1}")

    def after_train_iter(self, runner: Runner) -> None:
        if self.by_epoch:
            return
        if self.every_n_iters(runner, self.interval) or (
            self.save_last and self.is_last_iter(runner)
        ):
            self._save(runner, f"iter_{runner.iter + 1}")
