"""Resuming, for the :class:`~.checkpointer.Checkpointer`: read and check a checkpoint
completely without touching the run (:func:`read_resumable`), then apply it
(:func:`apply_resumable`); and the collectives that keep every process on the same choice.

A checkpoint that fails anywhere in :func:`read_resumable` (checksums, a JSON file of the
wrong shape, counters, hook or RNG state, another model or optimizer) leaves the run as it
was, so auto-resume can fall back to the next older checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .. import checkpoint as ckpt_io
from ..checkpoint import CheckpointError
from ..errors import ConfigError
from .restore import check_model_and_optimizer, load_model_and_optimizer
from .rng import restore_rng_states
from .train_state import TrainState

if TYPE_CHECKING:
    from .runner import Runner

_RNG_KEYS = ("torch", "python", "python_gauss", "numpy", "numpy_gauss")


@dataclass
class Resumable:
    """A checkpoint read and checked against the run: what :func:`apply_resumable` loads."""

    ckpt: ckpt_io.Checkpoint
    hooks: dict[str, Any]  # each saved hook state with its tensors joined back in


def read_resumable(runner: Runner, path: str) -> Resumable:
    """Read ``path`` (every file verified once) and check all of it against the run; a
    ConfigError naming the file and field otherwise. Changes nothing in the run."""
    ckpt = ckpt_io.load_checkpoint(path)
    if ckpt.optimizer_state is None:
        raise ConfigError(
            f"resume_from: {path} holds weights only (saved with "
            f"save_optimizer=False); use load_from to start from its weights"
        )
    sfile = f"{ckpt.path}/{ckpt.manifest['contents'].get('state') or 'state.json'}"
    state = ckpt.state
    problem = TrainState.check_state_dict(state.get("counters"))
    if problem:
        raise CheckpointError(f"{sfile}: {problem}; the file is damaged (use an older checkpoint)")
    for field, kind in (("hooks", dict), ("scaler", (dict, type(None)))):
        if not isinstance(state.get(field, {}), kind):
            raise CheckpointError(
                f"{sfile}: field '{field}' should be a mapping, found "
                f"{type(state[field]).__name__}; the file is damaged (use an older checkpoint)"
            )
    hooks = {}
    for key, saved in state.get("hooks", {}).items():
        try:
            hooks[key] = ckpt_io.join_tensors(saved, ckpt.tensors.get(f"hook.{key}", {}))
        except (KeyError, TypeError) as e:
            raise CheckpointError(
                f"{sfile}: field 'hooks.{key}' refers to tensor {e} that "
                f"hook.{key}.safetensors does not hold"
            ) from None
    _check_rng(runner, ckpt)
    check_model_and_optimizer(runner, ckpt, path)
    return Resumable(ckpt, hooks)


def _check_rng(runner: Runner, ckpt: ckpt_io.Checkpoint) -> None:
    ws = ckpt.meta.get("world_size")
    if ws != runner.accelerator.num_processes or "rng" not in ckpt.tensors:
        return  # re-derived from the seed (see _load_rng)
    rng = ckpt.tensors["rng"]
    bad = [k for k in _RNG_KEYS if k not in rng or rng[k].ndim < 1 or rng[k].shape[0] != ws]
    if bad:
        raise CheckpointError(
            f"{ckpt.path}/rng.safetensors: tensor '{bad[0]}' should hold one row per "
            f"process ({ws}); the file is damaged (use an older checkpoint)"
        )


def apply_resumable(runner: Runner, res: Resumable) -> None:
    """Load a checked checkpoint into the run: weights, optimizer, counters, scaler,
    hooks, RNG."""
    ckpt = res.ckpt
    load_model_and_optimizer(runner, ckpt)
    runner.state.load_state_dict(ckpt.state["counters"])
    scaler = ckpt.state.get("scaler")
    if scaler is not None and runner.accelerator.scaler is not None:
        runner.accelerator.scaler.load_state_dict(scaler)
    saved = dict(res.hooks)
    for h in runner.hooks.hooks:
        if h.state_key in saved:
            h.load_state_dict(saved.pop(h.state_key))
    if saved:
        runner.logger.warning(
            f"resume: no registered hook claims the saved state of {sorted(saved)}"
        )
    if ckpt.manifest.get("version") == 1:
        runner.logger.warning(
            f"resume: {ckpt.path} was written by an earlier acchooks (format version 1): "
            "its manifest carries no digest of its own, so only its files were verified"
        )
    _load_rng(runner, ckpt)


def _load_rng(runner: Runner, ckpt: ckpt_io.Checkpoint) -> None:
    """Restore each process's RNG states; with another number of processes re-express
    the epoch's position in the new global batch instead (and say what changes)."""
    meta = ckpt.meta
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


# ----------------------------------------------------------------------------- agreement
def all_agree(acc: Any, ok: bool) -> bool:
    """True on every process when ``ok`` is true on every process (a collective)."""
    if acc.num_processes == 1:
        return ok
    flags = acc.gather(torch.tensor([float(ok)], device=acc.device))
    return bool(flags.min().item() > 0)


def main_says(acc: Any, value: Any) -> Any:
    """The main process's ``value`` (plain JSON data) on every process (a collective):
    every process then tries the same checkpoints in the same order."""
    if acc.num_processes == 1:
        return value
    from accelerate.utils import broadcast

    data = json.dumps(value).encode("utf-8") if acc.is_main_process else b""
    n = broadcast(torch.tensor([len(data)], dtype=torch.int64, device=acc.device), 0)
    buf = torch.zeros(int(n.item()), dtype=torch.int32, device=acc.device)
    if acc.is_main_process:
        buf = torch.tensor(list(data), dtype=torch.int32, device=acc.device)
    got = broadcast(buf, 0).cpu().tolist()
    return json.loads(bytes(got).decode("utf-8"))
