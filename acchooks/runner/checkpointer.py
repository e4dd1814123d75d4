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

Where: :func:`checkpoint_dir` is the only place a save directory is derived, with
mmcv's meaning of ``out_dir`` (>= 1.3.16): ``<out_dir>/<basename of work_dir>``, or the
work dir when it is None. The run's directory follows ``checkpoint_config.out_dir``
(what a registered hook answers to :meth:`Hook.checkpoint_out_dir`).
"""

from __future__ import annotations

import os
import os.path as osp
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import checkpoint as ckpt_io  # the bytes on disk (looked up at call time: tests patch it)
from ..errors import ConfigError
from .fsdp import full_optimizer_state, full_tensors, is_fsdp
from .rng import gather_rng_states, restore_rng_states

if TYPE_CHECKING:
    from .runner import Runner

_NUMBERED = re.compile(r"([A-Za-z]+)_\d+")


def checkpoint_dir(work_dir: str, out_dir: str | None) -> str:
    """Where checkpoints go: ``work_dir``, or ``<out_dir>/<basename of work_dir>``."""
    if not out_dir:
        return work_dir
    return osp.join(out_dir, osp.basename(osp.abspath(work_dir).rstrip(os.sep)))


class Checkpointer:
    """Saves and restores one runner's training state (see the module docstring)."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

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
        if runner.is_main_process:
            ckpt_io.prepare_work_dir(self.directory, runner.logger)
            runner.logger.info(f"Checkpoints will be saved to {self.directory}")
        runner.accelerator.wait_for_everyone()

    def remove(self, path: str) -> None:
        """Remove a committed checkpoint. A collective: call it on every process."""
        runner = self._runner
        if runner.is_main_process and osp.exists(path):
            ckpt_io.remove_checkpoint(path)
        runner.accelerator.wait_for_everyone()

    def retain(self, saved: str, keep: int) -> None:
        """Keep the newest ``keep`` complete ``<prefix>_<N>`` checkpoints of the run's
        directory, counting ``saved`` (committed by now), removing the oldest by N. Only
        the main process looks and deletes (others may see a directory mid-delete, and a
        per-removal barrier would then deadlock); a collective."""
        runner = self._runner
        m = _NUMBERED.fullmatch(osp.basename(saved))
        if runner.is_main_process and m and keep > 0:
            root = osp.dirname(saved)
            found = [
                p for _, p in ckpt_io.list_checkpoints(root, m.group(1)) if osp.basename(p) != m[0]
            ]
            for p in found[: max(len(found) - (keep - 1), 0)]:
                ckpt_io.remove_checkpoint(p)
        runner.accelerator.wait_for_everyone()

    # ---------------------------------------------------------------- save
    def save(
        self,
        name: str,
        *,
        weights_only: bool = False,
        latest: bool = True,
        directory: str | None = None,
    ) -> str:
        """Write checkpoint ``name`` under ``directory`` (default: the run's) and return its
        path; ``latest=False`` leaves the ``latest`` pointer alone. A collective: every
        process calls it, the main process writes, nobody goes on before the commit."""
        runner = self._runner
        acc = runner.accelerator
        root = directory or self.directory
        path = osp.join(root, name)
        model_state = acc.get_state_dict(runner.model)  # collective under FSDP/DeepSpeed
        rng = gather_rng_states(acc)  # collective
        optimizer_state, hook_states = self._gather(weights_only)
        if acc.is_main_process:
            tensors: dict[str, dict[str, torch.Tensor]] = {"rng": rng}
            state = self._state(hook_states, tensors)
            meta = self._meta(state["counters"])
            latest = self._mark_nonfinite(name, model_state, meta) and latest
            os.makedirs(root, exist_ok=True)
            cpu_state = {k: v.cpu() for k, v in model_state.items()}
            ckpt_io.save_checkpoint(
                path,
                model_state=cpu_state,
                optimizer_state=optimizer_state,
                tensors=tensors,
                state=state,
                meta=meta,
            )
            if latest:
                ckpt_io.update_latest_pointer(root, path)
            runner.logger.info(f"Saving checkpoint at {name} ({state['counters']['iter']} iters)")
        acc.wait_for_everyone()  # nobody goes on before the checkpoint is committed
        return path

    def _gather(self, weights_only: bool) -> tuple[dict | None, dict[str, Any]]:
        """The optimizer state (main process; every process gathers under FSDP) and each
        stateful hook's state by ``state_key`` (full tensors under FSDP: EMA DTensors)."""
        runner = self._runner
        hooks = {h.state_key: st for h in runner.hooks.hooks if (st := h.state_dict())}
        if is_fsdp(runner.accelerator):  # collectives: every process gathers its shards
            opt = None if weights_only else full_optimizer_state(runner.model, runner.optimizer)
            return opt, {k: full_tensors(v) for k, v in hooks.items()}
        if weights_only or not runner.accelerator.is_main_process:
            return None, hooks
        return runner.optimizer.state_dict(), hooks

    def _state(self, hook_states: dict[str, Any], tensors: dict) -> dict[str, Any]:
        """The JSON part: counters, scaler, hooks (their tensors go into ``tensors``)."""
        acc = self._runner.accelerator
        hooks = {}
        for key, st in hook_states.items():
            group: dict[str, torch.Tensor] = {}
            hooks[key] = ckpt_io.split_tensors(st, "t", group)
            if group:
                tensors[f"hook.{key}"] = group
        scaler = acc.scaler.state_dict() if acc.scaler is not None else None
        return {"counters": self._runner.state.state_dict(), "hooks": hooks, "scaler": scaler}

    def _meta(self, counters: dict[str, int]) -> dict[str, Any]:
        runner = self._runner
        optimizer = getattr(runner.optimizer, "optimizer", runner.optimizer)  # Accelerate's
        return {
            **counters,
            "world_size": runner.accelerator.num_processes,
            "seed": runner.meta.get("seed"),
            "optimizer_type": type(optimizer).__name__,
            "global_batch": runner.meta.get("global_batch"),
            "config": runner.cfg.pretty_text if runner.cfg is not None else None,
        }

    def _mark_nonfinite(self, name: str, model_state: dict, meta: dict) -> bool:
        """Record non-finite weights in ``meta``; False if there are any: such a
        checkpoint is kept for inspection but never ``latest`` nor picked by auto."""
        bad = [
            k
            for k, v in model_state.items()
            if v.is_floating_point() and not torch.isfinite(v).all()
        ]
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
        """The newest complete, verified checkpoint of the run's directory (logging why
        newer ones were skipped), or None. Reads only."""
        found, rejected = ckpt_io.find_latest(self.directory)
        for reason in rejected:
            self._runner.logger.warning(f"resume auto: {reason}")
        return found

    def resume(self, path: str) -> str | None:
        """Restore the whole training state from ``path``, or from the newest resumable
        checkpoint with ``'auto'`` (None, and a fresh start, when there is none)."""
        runner = self._runner
        if path == "auto":
            found = self.find_resumable()
            if found is None:
                runner.logger.info(
                    f"resume auto: no complete checkpoint in {[self.directory]}; starting fresh"
                )
                return None
            path = str(found)
        path = ckpt_io.follow_latest(path)
        ckpt = ckpt_io.load_checkpoint(path)
        if ckpt.optimizer_state is None:
            raise ConfigError(
                f"resume_from: {path} holds weights only (saved with "
                f"save_optimizer=False); use load_from to start from its weights"
            )
        from .restore import load_model_and_optimizer

        load_model_and_optimizer(runner, ckpt, path)
        runner.state.load_state_dict(ckpt.state["counters"])
        scaler = ckpt.state.get("scaler")
        if scaler is not None and runner.accelerator.scaler is not None:
            runner.accelerator.scaler.load_state_dict(scaler)
        self._load_hooks(ckpt)
        self._load_rng(ckpt)
        st = runner.state
        runner.logger.info(
            f"resumed from {path}: epoch {st.epoch}, iter {st.iter}, step {st.steps}"
        )
        return path

    def _load_hooks(self, ckpt: Any) -> None:
        runner = self._runner
        saved = dict(ckpt.state.get("hooks", {}))
        for h in runner.hooks.hooks:
            if h.state_key in saved:
                group = ckpt.tensors.get(f"hook.{h.state_key}", {})
                h.load_state_dict(ckpt_io.join_tensors(saved.pop(h.state_key), group))
        if saved:
            runner.logger.warning(
                f"resume: no registered hook claims the saved state of {sorted(saved)}"
            )

    def _load_rng(self, ckpt: Any) -> None:
        """Restore each process's RNG states; with another number of processes re-express
        the epoch's position in the new global batch instead (and say what changes)."""
        runner = self._runner
        meta = ckpt.manifest.get("meta", {})
        ws, acc = meta.get("world_size"), runner.accelerator
        if ws == acc.num_processes and "rng" in ckpt.tensors:
            restore_rng_states(ckpt.tensors["rng"], acc.process_index)
            return
        old_gb, new_gb = meta.get("global_batch"), runner.meta.get("global_batch")
        st = runner.state
        if st.batches_done and old_gb and new_gb:
            uneven = st.rebatch(old_gb, new_gb)
            if uneven is not None:
                runner.logger.warning(
                    f"resume: {uneven} samples of epoch {st.epoch + 1} were consumed, not a "
                    f"multiple of the new global batch {new_gb}; skipping "
                    f"{st.batches_done * new_gb} of them"
                )
        runner.logger.warning(
            f"resume: checkpoint written by {ws} processes (global batch {old_gb}), now "
            f"{acc.num_processes} processes (global batch {new_gb}); the epoch's sample order "
            f"is unchanged, iterations per epoch and optimizer steps per epoch change with the "
            f"global batch, and the per-process RNG states are re-derived from the seed"
        )
