"""Does a checkpoint fit this model and optimizer? Checked before resume touches either,
so a checkpoint of another model or optimizer is a message naming the keys, not a torch
traceback halfway through ``load_state_dict``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .format import Checkpoint

# Per-parameter state of torch.optim optimizers: always the shape of the parameter.
_PARAM_SHAPED = {
    "momentum_buffer",
    "exp_avg",
    "exp_avg_sq",
    "max_exp_avg_sq",
    "exp_inf",
    "square_avg",
    "grad_avg",
    "acc_delta",
    "sum",
    "ax",
    "prev",
}
# param_group keys that torch adds or drops between versions: not a sign of another type.
_VERSION_KEYS = {
    "foreach",
    "fused",
    "differentiable",
    "capturable",
    "maximize",
    "decoupled_weight_decay",
}
# param_group keys the schedule hooks add in before_run (mmcv's initial_lr and
# initial_momentum): a checkpoint has them, the run being resumed does not have them yet.
_SCHEDULE_KEYS = {"initial_lr", "initial_momentum", "lr_batch_scale"}  # + LR scaling's factor
_IGNORED_GROUP_KEYS = _VERSION_KEYS | _SCHEDULE_KEYS | {"params"}


def _names(keys: Iterable[str], limit: int = 8) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" ... and {len(keys) - limit} more" if len(keys) > limit else "")


def check_model(saved: dict[str, torch.Tensor], model: nn.Module, where: str) -> list[str]:
    """Missing, unexpected and shape-mismatched keys of ``saved`` against ``model``."""
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    shapes = [
        f"{k} {tuple(saved[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in saved and saved[k].shape != own[k].shape
    ]
    if missing:
        problems.append(
            f"{where}: {len(missing)} model key(s) missing from the checkpoint: {_names(missing)}"
        )
    if unexpected:
        problems.append(
            f"{where}: {len(unexpected)} checkpoint key(s) the model does not have: "
            f"{_names(unexpected)}"
        )
    if shapes:
        problems.append(f"{where}: {len(shapes)} shape mismatch(es): {_names(shapes, 5)}")
    return problems


def check_optimizer(
    saved: dict, optimizer: torch.optim.Optimizer, where: str, saved_type: str | None = None
) -> list[str]:
    """Another optimizer type, other parameter groups, or state of the wrong shapes."""
    opt = getattr(optimizer, "optimizer", optimizer)  # unwrap Accelerate's AcceleratedOptimizer
    kind = type(opt).__name__
    if saved_type and saved_type != kind:
        return [f"{where}: saved by optimizer {saved_type}, this run uses {kind}"]
    groups, own = saved.get("param_groups", []), opt.param_groups
    if len(groups) != len(own):
        return [f"{where}: {len(groups)} parameter group(s) saved, {kind} here has {len(own)}"]
    problems = []
    for i, (g, o) in enumerate(zip(groups, own, strict=True)):
        if len(g.get("params", [])) != len(o["params"]):
            problems.append(
                f"{where}: param_groups[{i}] holds {len(g.get('params', []))} "
                f"parameters, {kind} here has {len(o['params'])}"
            )
        extra = sorted(set(g) - set(o) - _IGNORED_GROUP_KEYS)
        lacking = sorted(set(o) - set(g) - _IGNORED_GROUP_KEYS)
        if extra or lacking:
            problems.append(
                f"{where}: param_groups[{i}] has hyper-parameters "
                f"{extra or '[]'} that {kind} does not use and lacks {lacking or '[]'}; "
                f"it was saved by another optimizer type"
            )
    if problems:
        return problems
    # torch maps saved ids to parameters by position across the groups.
    params = {
        pid: p
        for g, o in zip(groups, own, strict=True)
        for pid, p in zip(g["params"], o["params"], strict=True)
    }
    bad = []
    for pid, values in saved.get("state", {}).items():
        p = params.get(pid)
        if p is None or not isinstance(values, dict):
            continue
        for name, v in values.items():
            if name in _PARAM_SHAPED and isinstance(v, torch.Tensor) and v.shape != p.shape:
                bad.append(f"state[{pid}].{name} {tuple(v.shape)} vs parameter {tuple(p.shape)}")
    if bad:
        problems.append(
            f"{where}: {len(bad)} state tensor(s) do not fit the parameters: {_names(bad, 5)}"
        )
    return problems


def check_compatible(
    ckpt: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> list[str]:
    """Problems that would make resuming ``ckpt`` into ``model``/``optimizer`` fail or
    silently mismatch; empty when it fits. ``model`` is the unwrapped model."""
    problems = check_model(ckpt.model_state, model, f"{ckpt.path}/model.safetensors")
    if optimizer is not None and ckpt.optimizer_state is not None:
        problems += check_optimizer(
            ckpt.optimizer_state,
            optimizer,
            f"{ckpt.path}/optimizer.json",
            ckpt.meta.get("optimizer_type"),
        )
    return problems
