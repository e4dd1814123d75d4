"""Between the runner and the checkpoint format: what goes into a checkpoint and how a
run is restored from one (weights, optimizer, counters, scaler, hook states by name)."""

from __future__ import annotations

import os
import os.path as osp
from typing import Any

import torch

from ..errors import ConfigError
from .fsdp import (
    ShapeView,
    full_optimizer_state,
    full_shapes,
    full_tensors,
    is_fsdp,
    load_full_state,
)


def split_tensors(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested structure by a ``{"__tensor__": key}`` marker."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {str(k): split_tensors(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def join_tensors(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: join_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [join_tensors(v, tensors) for v in obj]
    return obj


def gather_rng_states(accelerator) -> dict[str, torch.Tensor]:
    """Every process's Python, NumPy, torch and CUDA RNG states, stacked by rank
    (plain tensors, so they go into safetensors; a collective: all processes call it)."""
    import random

    import numpy as np

    version, py_state, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    local = {
        "torch": torch.get_rng_state().to(torch.int64),
        "python": torch.tensor([version, *py_state], dtype=torch.int64),
        "python_gauss": torch.tensor(
            [float("nan") if gauss is None else gauss], dtype=torch.float64
        ),
        "numpy": torch.tensor([np_pos, np_has_gauss, *np_keys.tolist()], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        local["cuda"] = torch.stack(torch.cuda.get_rng_state_all()).to(torch.int64)
    if accelerator.num_processes == 1:
        return {k: v.unsqueeze(0) for k, v in local.items()}
    dev = accelerator.device
    return {k: accelerator.gather(v.unsqueeze(0).to(dev)).cpu() for k, v in local.items()}


def restore_rng_states(states: dict[str, torch.Tensor], rank: int) -> None:
    import random

    import numpy as np

    torch.set_rng_state(states["torch"][rank].to(torch.uint8))
    py = states["python"][rank].tolist()
    gauss = float(states["python_gauss"][rank, 0])
    random.setstate((py[0], tuple(py[1:]), None if gauss != gauss else gauss))
    n = states["numpy"][rank].tolist()
    np.random.set_state(
        (
            "MT19937",
            np.array(n[2:], dtype=np.uint32),
            n[0],
            n[1],
            float(states["numpy_gauss"][rank, 0]),
        )
    )
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(states["cuda"][rank].to(torch.uint8)))


def _counters(runner) -> dict[str, int]:
    """Counters as they will be once the current stage has finished."""
    if runner.stage == "preempt":  # between two train iterations
        return {
            "epoch": runner.epoch,
            "iter": runner.iter,
            "inner_iter": runner.inner_iter + 1,
            "step": runner.step,
        }
    if runner.stage == "after_train_iter":
        return {
            "epoch": runner.epoch,
            "iter": runner.iter + 1,
            "inner_iter": runner.inner_iter + 1,
            "step": runner.step,
        }
    if runner.stage == "after_train_epoch" and runner.by_epoch:
        return {
            "epoch": runner.epoch + 1,
            "iter": runner.iter,
            "inner_iter": 0,
            "step": runner.step,
        }
    return {"epoch": runner.epoch, "iter": runner.iter, "inner_iter": 0, "step": runner.step}


def save_training_state(
    runner,
    name: str,
    out_dir: str | None = None,
    save_optimizer: bool = True,
    update_latest: bool = True,
) -> str:
    from ..checkpoint import save_checkpoint, update_latest_pointer

    acc = runner.accelerator
    root = out_dir or runner.work_dir
    path = osp.join(root, name)
    model_state = acc.get_state_dict(runner.model)  # collective under FSDP/DeepSpeed
    rng = gather_rng_states(acc)  # collective
    fsdp = is_fsdp(acc)
    optimizer_state = None
    hook_states = None
    if fsdp:  # collectives: every process gathers its shards, the main process gets it all
        if save_optimizer:
            optimizer_state = full_optimizer_state(runner.model, runner.optimizer)
        hook_states = [full_tensors(h.state_dict()) for h in runner.hooks.hooks]  # EMA DTensors
    elif save_optimizer and acc.is_main_process:
        optimizer_state = runner.optimizer.state_dict()
    if acc.is_main_process:
        tensors: dict[str, dict[str, torch.Tensor]] = {"rng": rng}
        hooks = {}
        for i, h in enumerate(runner.hooks.hooks):
            st = hook_states[i] if hook_states is not None else h.state_dict()
            if st:
                group: dict[str, torch.Tensor] = {}
                hooks[h.state_key] = split_tensors(st, "t", group)
                if group:
                    tensors[f"hook.{h.state_key}"] = group
        counters = _counters(runner)
        state = {
            "counters": counters,
            "hooks": hooks,
            "scaler": acc.scaler.state_dict() if acc.scaler is not None else None,
        }
        optimizer = getattr(runner.optimizer, "optimizer", runner.optimizer)  # unwrap Accelerate's
        meta = {
            **counters,
            "world_size": acc.num_processes,
            "seed": runner.meta.get("seed"),
            "optimizer_type": type(optimizer).__name__,
            "global_batch": runner.meta.get("global_batch"),
            "config": runner.cfg.pretty_text if runner.cfg is not None else None,
        }
        nonfinite = [
            k
            for k, v in model_state.items()
            if v.is_floating_point() and not torch.isfinite(v).all()
        ]
        if nonfinite:  # saved for inspection, but never `latest` nor picked by resume auto
            meta["nonfinite_weights"] = nonfinite
            update_latest = False
            runner.logger.error(
                f"checkpoint {name}: non-finite values in {len(nonfinite)} "
                f"tensors ({', '.join(nonfinite[:5])}); not marked latest"
            )
        os.makedirs(root, exist_ok=True)
        save_checkpoint(
            path,
            model_state={k: v.cpu() for k, v in model_state.items()},
            optimizer_state=optimizer_state,
            tensors=tensors,
            state=state,
            meta=meta,
        )
        if update_latest:
            update_latest_pointer(root, path)
        runner.logger.info(f"Saving checkpoint at {name} ({counters['iter']} iters)")
    acc.wait_for_everyone()  # nobody goes on before the checkpoint is committed
    return path


def resume_training_state(runner, path: str) -> None:
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.optimizer_state is None:
        raise ConfigError(
            f"resume_from: {path} holds weights only (saved with "
            f"save_optimizer=False); use load_from to start from its weights"
        )
    from ..checkpoint import check_compatible

    if is_fsdp(runner.accelerator):  # check against the unsharded shapes, load full states
        from ..checkpoint.compat import check_model, check_optimizer

        with full_shapes(runner.model) as shapes:
            problems = check_model(
                ckpt.model_state, ShapeView(shapes), f"{ckpt.path}/model.safetensors"
            )
            problems += check_optimizer(
                ckpt.optimizer_state,
                runner.optimizer,
                f"{ckpt.path}/optimizer.json",
                ckpt.meta.get("optimizer_type"),
            )
        if problems:
            raise ConfigError([f"resume_from {path}: {p}" for p in problems])
        load_full_state(runner.model, runner.optimizer, ckpt.model_state, ckpt.optimizer_state)
    else:
        problems = check_compatible(ckpt, runner.unwrapped_model, runner.optimizer)
        if problems:
            raise ConfigError([f"resume_from {path}: {p}" for p in problems])
        runner.unwrapped_model.load_state_dict(ckpt.model_state)
        runner.optimizer.load_state_dict(ckpt.optimizer_state)
    c = ckpt.state["counters"]
    runner.epoch, runner.iter, runner.step = c["epoch"], c["iter"], c["step"]
    runner.resume_inner_iter = c["inner_iter"]
    scaler = ckpt.state.get("scaler")
    if scaler is not None and runner.accelerator.scaler is not None:
        runner.accelerator.scaler.load_state_dict(scaler)
    saved = dict(ckpt.state.get("hooks", {}))
    for h in runner.hooks.hooks:
        if h.state_key in saved:
            group = ckpt.tensors.get(f"hook.{h.state_key}", {})
            h.load_state_dict(join_tensors(saved.pop(h.state_key), group))
    if saved:
        runner.logger.warning(
            f"resume: no registered hook claims the saved state of {sorted(saved)}"
        )
    meta = ckpt.manifest.get("meta", {})
    ws, acc = meta.get("world_size"), runner.accelerator
    if ws == acc.num_processes and "rng" in ckpt.tensors:
        restore_rng_states(ckpt.tensors["rng"], acc.process_index)
    else:
        old_gb, new_gb = meta.get("global_batch"), runner.meta.get("global_batch")
        if runner.resume_inner_iter and old_gb and new_gb:
            consumed = runner.resume_inner_iter * old_gb
            runner.resume_inner_iter = consumed // new_gb
            if consumed % new_gb:
                runner.logger.warning(
                    f"resume: {consumed} samples of epoch {runner.epoch + 1} were consumed, not a "
                    f"multiple of the new global batch {new_gb}; skipping "
                    f"{runner.resume_inner_iter * new_gb} of them"
                )
        runner.logger.warning(
            f"resume: checkpoint written by {ws} processes (global batch {old_gb}), now "
            f"{acc.num_processes} processes (global batch {new_gb}); the epoch's sample order "
            f"is unchanged, iterations per epoch and optimizer steps per epoch change with the "
            f"global batch, and the per-process RNG states are re-derived from the seed"
        )
    runner.logger.info(
        f"resumed from {path}: epoch {runner.epoch}, iter {runner.iter}, step {runner.step}"
    )
