"""Between the runner and the checkpoint format: what goes into a checkpoint and how a
run is restored from one (weights, optimizer, counters, scaler, hook states by name)."""
from __future__ import annotations

import os
import os.path as osp
from typing import Any

import torch

from ..errors import ConfigError


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


def _counters(runner) -> dict[str, int]:
    """Counters as they will be once the current stage has finished."""
    if runner.stage == "after_train_iter":
        return {"epoch": runner.epoch, "iter": runner.iter + 1, "inner_iter": runner.inner_iter + 1,
                "step": runner.step}
    if runner.stage == "after_train_epoch" and runner.by_epoch:
        return {"epoch": runner.epoch + 1, "iter": runner.iter, "inner_iter": 0, "step": runner.step}
    return {"epoch": runner.epoch, "iter": runner.iter, "inner_iter": 0, "step": runner.step}


def save_training_state(runner, name: str, out_dir: str | None = None,
                        save_optimizer: bool = True, update_latest: bool = True) -> str:
    from ..checkpoint import save_checkpoint, update_latest_pointer

    acc = runner.accelerator
    root = out_dir or runner.work_dir
    path = osp.join(root, name)
    model_state = acc.get_state_dict(runner.model)  # collective under FSDP/DeepSpeed
    if acc.is_main_process:
        tensors: dict[str, torch.Tensor] = {}
        hooks = {}
        for h in runner.hooks.hooks:
            st = h.state_dict()
            if st:
                group: dict[str, torch.Tensor] = {}
                hooks[h.state_key] = split_tensors(st, "t", group)
                if group:
                    tensors[f"hook.{h.state_key}"] = group
        counters = _counters(runner)
        state = {"counters": counters, "hooks": hooks,
                 "scaler": acc.scaler.state_dict() if acc.scaler is not None else None}
        meta = {**counters, "world_size": acc.num_processes,
                "global_batch": runner.meta.get("global_batch"),
                "config": runner.cfg.pretty_text if runner.cfg is not None else None}
        os.makedirs(root, exist_ok=True)
        save_checkpoint(path, model_state={k: v.cpu() for k, v in model_state.items()},
                        optimizer_state=runner.optimizer.state_dict() if save_optimizer else None,
                        tensors=tensors, state=state, meta=meta)
        if update_latest:
            update_latest_pointer(root, path)
        runner.logger.info(f"Saving checkpoint at {name} ({counters['iter']} iters)")
    acc.wait_for_everyone()  # nobody goes on before the checkpoint is committed
    return path


def resume_training_state(runner, path: str) -> None:
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.optimizer_state is None:
        raise ConfigError(f"resume_from: {path} holds weights only (saved with "
                          f"save_optimizer=False); use load_from to start from its weights")
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
        runner.logger.warning(f"resume: no registered hook claims the saved state of {sorted(saved)}")
    ws = ckpt.manifest.get("meta", {}).get("world_size")
    if ws is not None and ws != runner.accelerator.num_processes:
        runner.logger.warning(f"resume: checkpoint written by {ws} processes, now "
                              f"{runner.accelerator.num_processes}; the global batch changes")
    runner.logger.info(f"resumed from {path}: epoch {runner.epoch}, iter {runner.iter}, "
                       f"step {runner.step}")
