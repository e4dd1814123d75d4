"""FSDP on Accelerate: turning it on for several CPU processes, and full-state checkpoints.

**On CPUs.** Accelerate 1.15 turns FSDP on only when the distributed type is a GPU-like
one (``MULTI_GPU``, ``MULTI_XPU``, ...; ``AcceleratorState.__init__``), and
``FullyShardedDataParallelPlugin()`` raises ``RuntimeError: There are currently no
available devices found ...`` when ``sync_module_states`` is on (the default of
``accelerate launch --use_fsdp`` and of ``launch/fsdp.yaml``) and there is no GPU. torch's
FSDP1 and FSDP2 themselves run on CPU tensors over gloo. :func:`create_accelerator`
builds the plugin without ``sync_module_states`` (every process builds the model from the
same seed, so the weights agree anyway), and sets the state exactly as Accelerate's own
GPU branch does: ``AcceleratorState.distributed_type = FSDP``, ``fsdp_plugin``, the
mixed precision on the plugin, and ``PartialState``'s distributed type (Accelerate's
collectives treat ``FSDP`` as a torch.distributed type). FSDP1 also needs the device
``cpu`` rather than ``cpu:0`` (``device_id`` must equal the compute device).

**Checkpoints.** Under FSDP ``optimizer.state_dict()`` is this process's shard (flat
parameters for FSDP1, DTensor shards for FSDP2). :func:`full_optimizer_state` gathers the
unsharded state with ``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict
(full_state_dict=True, cpu_offload=True)`` (a collective; only the main process gets it)
and renumbers it by position, so it is exactly the ``state_dict()`` of the same optimizer
on the unsharded model: an FSDP checkpoint resumes without FSDP and the other way round.
:func:`load_full_state` puts a full model and optimizer state back into the sharded model
(``set_model_state_dict`` / ``set_optimizer_state_dict``, ``full_state_dict=True``; every
process passes the full state it read from the checkpoint).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

# module-name segments that wrappers insert into parameter names (FSDP1, activation
# checkpointing, torch.compile); the state dict names have none of them
_WRAPPER_SEGMENTS = {"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"}


def _fsdp_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def create_accelerator(**kwargs: Any):
    """``Accelerator(**kwargs)``, with FSDP working on CPU processes.

    When ``accelerate launch`` asks for FSDP (``ACCELERATE_USE_FSDP=true``) and the run is
    on CPUs (``cpu=True``, or ``ACCELERATE_USE_CPU``), the plugin is built here without
    ``sync_module_states`` and, with several processes, FSDP is switched on as Accelerate
    does on GPUs. Anything else is a plain ``Accelerator(**kwargs)``."""
    from accelerate.accelerator import Accelerator

    cpu = kwargs.get("cpu", False) or os.environ.get("ACCELERATE_USE_CPU", "false").lower() in (
        "1",
        "true",
        "yes",
    )
    if not (_fsdp_requested() and cpu and kwargs.get("fsdp_plugin") is None):
        return Accelerator(**kwargs)
    from accelerate.utils import FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin(
        sync_module_states=False, cpu_ram_efficient_loading=False
    )
    accelerator = Accelerator(**kwargs, fsdp_plugin=plugin)
    if accelerator.num_processes > 1:
        _enable_fsdp_on_cpu(accelerator, plugin)
    return accelerator


def _enable_fsdp_on_cpu(accelerator, plugin) -> None:
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    # what AcceleratorState.__init__ does at its end: every later AcceleratorState()
    # copies PartialState's fields back, so both must say FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    if plugin.fsdp_version == 1:  # FSDP1 compares device_id with the compute device 'cpu'
        PartialState._shared_state["device"] = torch.device("cpu")
        state.device = torch.device("cpu")


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def _fqn(name: str) -> str:
    return ".".join(s for s in name.split(".") if s not in _WRAPPER_SEGMENTS)


def _inner(optimizer) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # unwrap Accelerate's AcceleratedOptimizer


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_optimizer_state(model: nn.Module, optimizer) -> dict | None:
    """The unsharded ``optimizer.state_dict()`` on the main process (parameters numbered
    by position across the groups, as torch does), ``None`` on the others. A collective:
    every process calls it."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    # On CPUs, FSDP1's gather with cpu_offload=True (torch 2.14, gloo) returns Adam's
    # exp_avg_sq as its exp_avg too (the gathered tensors are already on the CPU, so the
    # "offload" keeps aliasing a reused buffer); tests/fsdp_roundtrip.py checks this. Every
    # process gets the full state there instead, which on CPUs costs only host memory.
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    osd = get_optimizer_state_dict(
        model, _inner(optimizer), options=_options(cpu_offload=not on_cpu)
    )
    if dist.get_rank() != 0 or not osd or not osd.get("param_groups"):
        return None  # not the main process (cpu_offload: rank 0 only gets it)
    ids: dict[str, int] = {}
    groups = []
    for g in osd["param_groups"]:
        groups.append({**g, "params": [ids.setdefault(f, len(ids)) for f in g["params"]]})
    unknown = [f for f in osd["state"] if f not in ids]
    if unknown:
        raise RuntimeError(f"FSDP optimizer state for parameters in no param group: {unknown[:3]}")
    state = {ids[f]: v for f, v in sorted(osd["state"].items(), key=lambda kv: ids[kv[0]])}
    return {"state": state, "param_groups": groups}


def _param_fqns(model: nn.Module, optimizer) -> list[list[str]]:
    """The optimizer's parameters by state-dict name, group by group."""
    names = {id(p): _fqn(n) for n, p in model.named_parameters(remove_duplicate=False)}
    out = []
    for i, g in enumerate(_inner(optimizer).param_groups):
        missing = [j for j, p in enumerate(g["params"]) if id(p) not in names]
        if missing:
            raise RuntimeError(
                f"FSDP resume: param_groups[{i}] holds {len(missing)} tensor(s) "
                f"that are not parameters of the model (e.g. index {missing[0]}); "
                f"with FSDP1 use fsdp_use_orig_params: true"
            )
        out.append([names[id(p)] for p in g["params"]])
    return out


def load_full_state(
    model: nn.Module, optimizer, model_state: dict[str, torch.Tensor], optimizer_state: dict | None
) -> None:
    """Load full (unsharded) model and optimizer states into an FSDP model and its
    optimizer. Every process passes the same full states; a collective."""
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    set_model_state_dict(model, dict(model_state), options=_options())
    if optimizer_state is None:
        return
    fqns = _param_fqns(model, optimizer)
    by_id: dict[Any, str] = {}
    groups = []
    for g, names in zip(optimizer_state["param_groups"], fqns, strict=True):
        by_id.update(zip(g["params"], names, strict=True))
        groups.append({**g, "params": list(names)})
    state = {by_id[pid]: v for pid, v in optimizer_state.get("state", {}).items()}
    # torch 2.14's FSDP2 path fails (KeyError 'param_groups.0.initial_lr') on a saved group
    # key that the live group lacks (the LR hook adds initial_lr in before_run, after the
    # resume). load_state_dict replaces the groups' values anyway: add them first.
    for live, saved in zip(_inner(optimizer).param_groups, groups, strict=True):
        for k, v in saved.items():
            live.setdefault(k, v)
    set_optimizer_state_dict(
        model, _inner(optimizer), {"state": state, "param_groups": groups}, options=_options()
    )


@contextlib.contextmanager
def full_shapes(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """The model's state-dict names with their unsharded shapes (meta tensors), for the
    checks before a resume. Within the block the optimizer's parameters have their full
    shapes too (FSDP2: DTensors report the global shape; FSDP1: ``summon_full_params``,
    a collective)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    ctx = contextlib.nullcontext()
    if FSDP.fsdp_modules(model):
        ctx = FSDP.summon_full_params(model, writeback=False, offload_to_cpu=True)
    with ctx:
        shapes = {}
        for mod_name, mod in model.named_modules(remove_duplicate=False):
            named = [
                *mod.named_parameters(recurse=False),
                *(
                    (n, b)
                    for n, b in mod.named_buffers(recurse=False)
                    if n not in mod._non_persistent_buffers_set
                ),
            ]  # what state_dict() holds
            for n, t in named:
                if n == "_flat_param":  # FSDP1's flat parameter: its parts are named above
                    continue
                key = _fqn(f"{mod_name}.{n}" if mod_name else n)
                shapes[key] = torch.empty(tuple(t.shape), dtype=t.dtype, device="meta")
        yield shapes


class ShapeView:
    """Quacks like a module for :func:`acchooks.checkpoint.compat.check_model`."""

    def __init__(self, shapes: dict[str, torch.Tensor]):
        self._shapes = shapes

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._shapes


def full_tensors(obj: Any) -> Any:
    """DTensors in a nested structure replaced by their full tensors (a collective when
    there are any: every process calls it on the same structure)."""
    from torch.distributed.tensor import DTensor

    if isinstance(obj, DTensor):
        return obj.full_tensor()
    if isinstance(obj, dict):
        return {k: full_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(full_tensors(v) for v in obj)
    return obj
