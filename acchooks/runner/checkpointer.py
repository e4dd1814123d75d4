"""Checkpointer: the one owner of a run's checkpoints.

Built once per run (``runner.checkpointer``). Hooks decide *when* to save; the
Checkpointer decides *how* and *where*: the checkpoint directory and names, ``save``
(full state or weights only), ``resume`` (a path or ``'auto'``), which checkpoint is
resumable, retention and the ``latest`` pointer. The bytes on disk are
:mod:`acchooks.checkpoint`'s (format, atomic commit, reader, work-dir housekeeping).

A full checkpoint holds these named parts (state by name, never by position):

=============  ==============================================================
``model``      ``model.safetensors``: the full (unwrapped, gathered) state dict
``optimizer``  the optimizer state (gathered in full under FSDP); not in weights-only
``counters``   the :class:`~.train_state.TrainState` (progress: epoch, iter, ...)
``scaler``     the fp16 GradScaler's state, when there is one
``rng``        every process's RNG states, stacked by rank
``hooks``      each stateful hook's ``state_dict()`` under its ``state_key``
=============  ==============================================================

Reliability: a checkpoint whose weights hold NaN/inf is kept for inspection but is never
``latest`` nor resumed automatically; retention never removes the newest finite checkpoint
nor the one ``latest`` names; a run that ends with non-finite weights says so (and, under
``optimizer_config.nonfinite='raise'``, stops with an error at the first such save).
Auto-resume tries only full-state, finite checkpoints, newest first, each read and checked
completely (every file verified once) before anything is loaded, and falls back to the next
older one when a newer one cannot be resumed; every process makes the same choice.

Where: :func:`checkpoint_dir` is the only place a save directory is derived, with
mmcv's meaning of ``out_dir`` (>= 1.3.16): ``<out_dir>/<basename of work_dir>``, or the
work dir when it is None. The run's directory follows ``checkpoint_config.out_dir``
(what a registered hook answers to :meth:`Hook.checkpoint_out_dir`).
"""

from __future__ import annotations

import os
import os.path as osp
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import checkpoint as ckpt_io  # the bytes on disk (looked up at call time: tests patch it)
from ..errors import NonFiniteError
from .async_save import BackgroundSaver, CheckpointSaveError, failure_message
from .nonfinite import ended_nonfinite, has_nonfinite_parameters, last_good, nonfinite_tensors
from .resume import all_agree, apply_resumable, main_says, read_resumable
from .retention import protected, rotate
from .save_parts import collect

if TYPE_CHECKING:
    from .runner import Runner


def checkpoint_dir(work_dir: str, out_dir: str | None) -> str:
    """Where checkpoints go: ``work_dir``, or ``<out_dir>/<basename of work_dir>``."""
    if not out_dir:
        return work_dir
    return osp.join(out_dir, osp.basename(osp.abspath(work_dir).rstrip(os.sep)))


class Checkpointer:
    """Saves and restores one runner's training state (see the module docstring)."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.nonfinite_saves: list[str] = []  # this run's checkpoints with NaN/inf weights
        self.background: BackgroundSaver | None = None  # async_save=True (set by prepare)
        self._requested: tuple[str, dict[str, Any]] | None = None  # see save_after_stage

    # ---------------------------------------------------------------- where
    @property
    def directory(self) -> str:
        """The run's checkpoint directory (``checkpoint_config.out_dir`` applied)."""
        runner = self._runner
        for hook in runner.hooks.hooks:
            out_dir = hook.checkpoint_out_dir()
            if out_dir:
                return checkpoint_dir(runner.work_dir, out_dir)
        return runner.work_dir

    def dir_for(self, out_dir: str | None) -> str:
        """The directory a hook's own ``out_dir`` means (EvalHook's best checkpoints)."""
        return checkpoint_dir(self._runner.work_dir, out_dir)

    @property
    def latest(self) -> Path | None:
        """The checkpoint the ``latest`` pointer names, or None."""
        return ckpt_io.read_latest_pointer(self.directory)

    # ---------------------------------------------------------------- housekeeping
    def prepare(self) -> None:
        """Before the run saves: remove what killed saves left (main process); a
        collective."""
        runner = self._runner
        if any(h.checkpoint_async_save() for h in runner.hooks.hooks):
            self.background = self.background or BackgroundSaver()
        if runner.is_main_process:
            ckpt_io.prepare_work_dir(self.directory, runner.logger)
            runner.logger.info(f"Checkpoints will be saved to {self.directory}")
        runner.accelerator.wait_for_everyone()

    def remove(self, path: str) -> None:
        """Remove a committed checkpoint (never the one ``latest`` names). A collective:
        call it on every process."""
        self.settle(block=True)  # not while a background save rotates
        runner = self._runner
        if runner.is_main_process and osp.exists(path):
            if Path(osp.realpath(path)) in protected(osp.dirname(path), []):
                runner.logger.warning(f"not removing {path}: the latest pointer names it")
            else:
                ckpt_io.remove_checkpoint(path)
        runner.accelerator.wait_for_everyone()

    def retain_best(self, kept: list[str], dropped: list[str]) -> None:
        """Retention of ranked checkpoints (EvalHook's ``max_keep_best``): remove each of
        ``dropped`` not in ``kept`` with :meth:`remove` (renamed to a hidden trash name
        first, never ``latest``; a missing one is skipped), after the caller committed the
        newest of ``kept``, so a kill never leaves fewer than those. A collective."""
        keep = {osp.realpath(p) for p in kept}
        for path in dropped:
            if osp.realpath(path) not in keep:
                self.remove(path)

    def retain(self, saved: str, keep: int) -> None:
        """Keep the newest ``keep`` complete ``<prefix>_<N>`` checkpoints of the run's
        directory, counting ``saved`` (committed by now), removing the oldest by N; never
        the newest one with finite weights nor the one ``latest`` names (a NaN streak never
        rotates the last good checkpoint away). Only the main process looks and deletes
        (others may see a directory mid-delete, and a per-removal barrier would then
        deadlock); a collective."""
        self.settle(block=True)
        if self._runner.is_main_process:
            rotate(saved, keep, self._runner.logger)
        self._runner.accelerator.wait_for_everyone()

    # ---------------------------------------------------------------- save
    def save(
        self,
        name: str,
        *,
        weights_only: bool = False,
        latest: bool = True,
        directory: str | None = None,
        keep: int = -1,
        background: bool | None = None,
    ) -> str:
        """Write checkpoint ``name`` under ``directory`` (default: the run's), return its path;
        ``latest=False`` leaves ``latest`` alone; ``keep > 0``: then :meth:`retain`. A
        collective; the main process writes. With ``async_save`` (and ``background`` not
        False) the run's own checkpoints return once copied to host memory and are written
        in the background (:meth:`settle` agrees on the commit). Waits for the one in flight."""
        self.settle(block=True)
        runner = self._runner
        path = osp.join(directory or self.directory, name)
        if background is None:
            background = self.background is not None and directory is None and latest
        parts = collect(runner, weights_only)  # collectives
        if background and self.background is not None:
            write = lambda copied, event: self._write(path, copied, latest, keep, event)  # noqa: E731
            self.background.start(name, path, parts, write)
            return path
        finite = self._write(path, parts, latest, keep) if parts is not None else True
        # every process waits for the commit here and learns whether the weights are finite
        if not main_says(runner.accelerator, finite):
            self._nonfinite_saved(name)
        return path

    def save_after_stage(self, name: str, **kwargs: Any) -> None:
        """:meth:`save` once every hook of the current stage has run (the runner calls
        :meth:`save_requested`), so the checkpoint holds what lower-priority hooks did at
        this point (EvalHook's best score, EarlyStoppingHook): CheckpointHook's saves."""
        self._requested = (name, kwargs)

    def save_requested(self) -> None:
        """Carry out the :meth:`save_after_stage` request, if any (after each stage)."""
        if self._requested is not None:
            (name, kwargs), self._requested = self._requested, None
            self.save(name, **kwargs)

    def _write(self, path: str, parts: dict, latest: bool, keep: int, bg: Any = False) -> bool:
        """Commit ``parts`` as ``path``, point ``latest`` at it (finite weights only), then
        rotate; False if its weights are non-finite. The main process only, no collective
        (the writer thread's job, where ``bg`` is True or the snapshot's CUDA event)."""
        if bg is not True and bg is not False:  # the device-to-host copies of the snapshot
            bg.synchronize()
        name, root = osp.basename(path), osp.dirname(path)
        finite = self._mark_nonfinite(name, parts["model_state"], parts["meta"])
        os.makedirs(root, exist_ok=True)
        model_state = {k: v.cpu() for k, v in parts["model_state"].items()}
        ckpt_io.save_checkpoint(path, **{**parts, "model_state": model_state})
        if finite and latest:
            ckpt_io.update_latest_pointer(root, path)
        if keep > 0:
            rotate(path, keep, self._runner.logger)
        done = f"{name} ({parts['state']['counters']['iter']} iters)"
        msg = f"Saved checkpoint {done} in the background" if bg else f"Saving checkpoint at {done}"
        self._runner.logger.info(msg)
        return finite

    def settle(self, block: bool = False) -> None:
        """Agree on the background save in flight, if any (then a collective): finished
        (or, with ``block``, once it is), every process learns whether it committed; a
        failure raises :class:`CheckpointSaveError` everywhere. Called at each train
        iteration boundary, and with ``block`` by a save and at the end of the run."""
        if self.background is None or self.background.pending is None:
            return
        done = self.background.agree(self._runner.accelerator, block)
        if done is not None and "error" in done:
            raise CheckpointSaveError(failure_message(**done, latest=self.latest))
        if done is not None and not done["finite"]:
            self._nonfinite_saved(done["name"])

    def close(self) -> None:
        """Wait for the save in flight to end and stop the writer thread (no collective:
        also on an error path). The outcome is kept for :meth:`settle`."""
        failed = self.background.close() if self.background is not None else None
        if failed and sys.exc_info()[1] is not None:  # the run stops for another reason
            self._runner.logger.error(failure_message(**failed, latest=None))

    def _nonfinite_saved(self, name: str) -> None:
        """Remember a checkpoint with NaN/inf weights; stop under ``nonfinite='raise'``."""
        self.nonfinite_saves.append(name)
        if self.nonfinite_policy() == "raise":
            raise NonFiniteError(
                f"checkpoint {name} holds non-finite weights (kept for inspection, not "
                f"latest); stopping as optimizer_config.nonfinite='raise' asks. "
                f"{last_good(self.latest)}"
            )

    def nonfinite_policy(self) -> str | None:
        """What the run asks for non-finite values (``optimizer_config.nonfinite``)."""
        return next((p for h in self._runner.hooks.hooks if (p := h.nonfinite_policy())), None)

    def finish(self) -> None:
        """After the run: if the weights it ends with are non-finite, say so loudly (and
        raise under ``nonfinite='raise'``, for a non-zero exit status). A collective."""
        self.settle(block=True)
        runner = self._runner
        if all_agree(runner.accelerator, not has_nonfinite_parameters(runner.unwrapped_model)):
            return
        msg = ended_nonfinite(self.nonfinite_saves, last_good(self.latest))
        if self.nonfinite_policy() == "raise":
            raise NonFiniteError(msg)
        runner.logger.error("!" * 78 + "\n" + msg + "\n" + "!" * 78)

    def _mark_nonfinite(self, name: str, model_state: dict, meta: dict) -> bool:
        """Record non-finite weights in ``meta``; False if there are any: such a
        checkpoint is kept for inspection but never ``latest`` nor picked by auto."""
        bad = nonfinite_tensors(model_state)
        if not bad:
            return True
        meta["nonfinite_weights"] = bad
        self._runner.logger.error(
            f"checkpoint {name}: non-finite values in {len(bad)} tensors "
            f"({', '.join(bad[:5])}); not marked latest"
        )
        return False

    # ---------------------------------------------------------------- resume
    def find_resumable(self) -> Path | None:
        """The newest full-state, finite checkpoint of the run's directory that verifies
        (logging why newer ones were skipped), or None. Reads only."""
        found, rejected = ckpt_io.find_latest(self.directory, full_state=True)
        for reason in rejected:
            self._runner.logger.warning(f"resume auto: {reason}")
        return found

    def resume(self, path: str) -> str | None:
        """Restore the whole training state from ``path``, or from the newest resumable
        checkpoint with ``'auto'`` (None, and a fresh start, when there is none)."""
        if path == "auto":
            return self._resume_auto()
        path = ckpt_io.follow_latest(path)
        self._apply(read_resumable(self._runner, path), path)
        return path

    def _resume_auto(self) -> str | None:
        """Try the candidates newest first (the main process's list, on every process);
        the first that every process reads and checks completely is loaded."""
        runner = self._runner
        acc = runner.accelerator
        names, reasons = [], []
        if acc.is_main_process:
            found, reasons = ckpt_io.resume_candidates(self.directory)
            names = [str(p) for p in found]
        for reason in reasons:
            runner.logger.warning(f"resume auto: {reason}")
        for path in main_says(acc, names):
            try:
                loaded, problem = read_resumable(runner, path), None
            except Exception as e:  # nothing was loaded yet: any failure means "next one"
                loaded = None
                problem = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            if all_agree(acc, problem is None):
                self._apply(loaded, path)
                return path
            runner.logger.warning(
                f"resume auto: skipped {osp.basename(path)}: "
                f"{problem or 'another process could not read it'}; trying an older checkpoint"
            )
        self._fresh_start()
        return None

    def _fresh_start(self) -> None:
        runner = self._runner
        weights, _ = ckpt_io.find_latest(self.directory, verify="size")
        if weights is not None and not ckpt_io.is_full_state(ckpt_io.verify_checkpoint(weights)):
            runner.logger.warning(
                f"resume auto: {weights.name} holds weights only (save_optimizer=False or a "
                f"best checkpoint), which cannot be resumed; set load_from={str(weights)!r} "
                f"to start from its weights"
            )
        runner.logger.info(
            f"resume auto: no complete checkpoint to resume in {[self.directory]}; starting fresh"
        )

    def _apply(self, loaded: Any, path: str) -> None:
        runner = self._runner
        apply_resumable(runner, loaded)
        st = runner.state
        runner.logger.info(
            f"resumed from {path}: epoch {st.epoch}, iter {st.iter}, step {st.steps}"
        )
