"""What a full checkpoint holds, collected from the run for the
:class:`~.checkpointer.Checkpointer` (which decides where and when it is written).

:func:`collect` gathers every named part at a save point: the model state (a collective
under FSDP/DeepSpeed), every process's RNG states (a collective), the optimizer state and
each stateful hook's state, the counters, the scaler and the manifest's ``meta``. The
result is the keyword arguments of :func:`acchooks.checkpoint.save_checkpoint`, on the
main process (None elsewhere).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .. import checkpoint as ckpt_io
from .fsdp import full_optimizer_state, full_tensors, is_fsdp
from .rng import gather_rng_states
from .speed import uncompiled

if TYPE_CHECKING:
    from .runner import Runner


def collect(runner: Runner, weights_only: bool) -> dict[str, Any] | None:
    """The parts of a checkpoint of ``runner`` now (see the module docstring); a
    collective: every process calls it at the same point."""
    acc = runner.accelerator
    # collective under FSDP/DeepSpeed; keys without torch.compile's _orig_mod. (speed.py)
    model_state = acc.get_state_dict(uncompiled(runner.model))
    rng = gather_rng_states(acc)  # collective
    optimizer_state, hook_states = _gather(runner, weights_only)
    if not acc.is_main_process:
        return None
    tensors: dict[str, dict[str, torch.Tensor]] = {"rng": rng}
    state = _state(runner, hook_states, tensors)
    return {
        "model_state": model_state,
        "optimizer_state": optimizer_state,
        "tensors": tensors,
        "state": state,
        "meta": _meta(runner, state["counters"]),
    }


def _gather(runner: Runner, weights_only: bool) -> tuple[dict | None, dict[str, Any]]:
    """The optimizer state (main process; every process gathers under FSDP) and each
    stateful hook's state by ``state_key`` (full tensors under FSDP: EMA DTensors)."""
    hooks = {h.state_key: st for h in runner.hooks.hooks if (st := h.state_dict())}
    if is_fsdp(runner.accelerator):  # collectives: every process gathers its shards
        opt = None if weights_only else full_optimizer_state(runner.model, runner.optimizer)
        return opt, {k: full_tensors(v) for k, v in hooks.items()}
    if weights_only or not runner.accelerator.is_main_process:
        return None, hooks
    return runner.optimizer.state_dict(), hooks


def _state(runner: Runner, hook_states: dict[str, Any], tensors: dict) -> dict[str, Any]:
    """The JSON part: counters, scaler, hooks (their tensors go into ``tensors``)."""
    acc = runner.accelerator
    hooks = {}
    for key, st in hook_states.items():
        group: dict[str, torch.Tensor] = {}
        hooks[key] = ckpt_io.split_tensors(st, "t", group)
        if group:
            tensors[f"hook.{key}"] = group
    scaler = acc.scaler.state_dict() if acc.scaler is not None else None
    return {"counters": runner.state.state_dict(), "hooks": hooks, "scaler": scaler}


def _meta(runner: Runner, counters: dict[str, int]) -> dict[str, Any]:
    optimizer = getattr(runner.optimizer, "optimizer", runner.optimizer)  # Accelerate's
    return {
        **counters,
        "world_size": runner.accelerator.num_processes,
        "seed": runner.meta.get("seed"),
        "optimizer_type": type(optimizer).__name__,
        "global_batch": runner.meta.get("global_batch"),
        "config": runner.cfg.pretty_text if runner.cfg is not None else None,
        # classes, eval_transform, model: acchooks.datasets.describe (set by build_runner)
        **getattr(runner, "description", {}),
    }
