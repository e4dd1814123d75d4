"""CheckpointHook: save the training state every ``interval`` epochs or iterations.

mmcv's options and defaults: ``interval`` (-1: only ``save_last``), ``by_epoch``
(``epoch_<N>`` or ``iter_<N>`` directories, N 1-based), ``save_optimizer`` (False: weights
only, which ``load_from`` can use but resume refuses), ``out_dir`` (as in mmcv >= 1.3.16,
checkpoints go to ``<out_dir>/<basename of work_dir>``; default the work dir),
``max_keep_ckpts`` (-1: keep all), ``save_last``; and ours, ``async_save`` (False: True
copies the state to host memory at the save point and writes it in a background thread,
with every guarantee of a synchronous save; see docs/checkpoints.md).

Retention works from the checkpoints that exist in the directory (never from names
guessed from the interval), counts only complete ones, never removes the one just
saved, and runs only after the new checkpoint is committed, so even ``max_keep_ckpts=1``
keeps the previous complete checkpoint until the new one is in place; it never removes the
newest checkpoint with finite weights (the one ``latest`` names), so a NaN streak cannot
rotate the last good checkpoint away. This hook only
decides *when*; the runner's Checkpointer writes (main process, atomic directory, every
process waits for the commit), keeps the directory and rotates. The save is written once
every hook of the stage has run, whatever its priority, so a checkpoint holds that
point's evaluation (EvalHook's best score, EarlyStoppingHook's patience) and a resumed
run continues exactly.
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
        async_save: bool = False,
    ):
        CHECKPOINT_CONFIG.check(
            dict(
                interval=interval,
                by_epoch=by_epoch,
                save_optimizer=save_optimizer,
                out_dir=out_dir,
                max_keep_ckpts=max_keep_ckpts,
                save_last=save_last,
                async_save=async_save,
            )
        )
        self.interval, self.by_epoch = interval, by_epoch
        self.save_optimizer, self.out_dir = save_optimizer, out_dir
        self.max_keep_ckpts, self.save_last = max_keep_ckpts, save_last
        self.async_save = async_save
        self._start_iter = 0  # runner.iter when the run started (after a resume)
        self._last_save: str | None = None  # the name of the last save asked for

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "checkpoint_config") -> list[str]:
        """Every problem of ``checkpoint_config``, found before anything is built."""
        return CHECKPOINT_CONFIG.problems(cfg, path)

    def checkpoint_out_dir(self) -> str | None:
        return self.out_dir

    def checkpoint_async_save(self) -> bool:
        return self.async_save

    def before_run(self, runner: Runner) -> None:
        # Leftovers of a killed save are never checkpoints; remove them before we save.
        runner.checkpointer.prepare()
        self._start_iter = runner.iter

    def after_run(self, runner: Runner) -> None:
        self._save_stopped(runner)
        # Weights gone NaN/inf: said loudly (an error under optimizer_config.nonfinite='raise').
        runner.checkpointer.finish()

    def _save_stopped(self, runner: Runner) -> None:
        """A run stopped early (``runner.request_stop``: EarlyStoppingHook, at EvalHook's
        LOW priority, after this hook decided): save_last saves the last position, unless
        it was saved there (after the stage, so with what decided the stop)."""
        if not (self.save_last and runner.stopping and runner.iter > self._start_iter):
            return
        name = f"epoch_{runner.epoch}" if self.by_epoch else f"iter_{runner.iter}"
        if self._last_save != name:
            keep, weights_only = self.max_keep_ckpts, not self.save_optimizer
            runner.checkpointer.save(name, weights_only=weights_only, keep=keep, background=False)

    def _save(self, runner: Runner, name: str) -> None:
        self._last_save = name
        # written once every hook of this stage has run (EvalHook, at LOW, included), so
        # the checkpoint holds this point's evaluation; rotation (max_keep_ckpts) after
        # the commit, in the background with async_save
        runner.checkpointer.save_after_stage(
            name, weights_only=not self.save_optimizer, keep=self.max_keep_ckpts
        )

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
