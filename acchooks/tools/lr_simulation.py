"""The learning-rate / momentum simulation behind ``acchooks vis-lr``.

The run's geometry (iterations per epoch, accumulation, run length) is derived from the
config alone, then the run's own ``LrUpdaterHook`` / ``MomentumUpdaterHook`` are driven
over a stand-in runner whose optimizer is the configured class on stand-in parameters,
so the values are the ones a run would set, without building the model or reading data.
"""

from __future__ import annotations

import inspect
import math
import os
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import ToolError

if TYPE_CHECKING:
    from ..config import Config
    from ..optim.lr_scaling import LrScaling


def _dataset_size(cfg, dataset_size: int | None) -> int:
    if dataset_size is not None:
        if dataset_size <= 0:
            raise ToolError(
                f"--dataset-size: must be a positive number of samples, got {dataset_size}"
            )
        return dataset_size
    train = (cfg.get("data") or {}).get("train")
    kind = train.get("type") if isinstance(train, dict) else None
    if kind == "Shapes":
        from ..datasets.shapes import Shapes

        default = inspect.signature(Shapes).parameters["num_samples"].default
        return int(train.get("num_samples", default))
    raise ToolError(
        f"--dataset-size: needed, the number of train samples (vis-lr does not "
        f"read data; only a Shapes train set has its size in the config, this "
        f"one is {kind or 'not set'})"
    )


def iters_per_epoch(
    num_samples: int,
    samples_per_gpu: int,
    ngpus: int = 1,
    drop_last: bool = False,
    split_batches: bool = False,
    even_batches: bool = True,
) -> int:
    """len() of the train loader once Accelerate prepared it (on process 0)."""
    batches = (
        num_samples // samples_per_gpu if drop_last else math.ceil(num_samples / samples_per_gpu)
    )
    if ngpus == 1 or split_batches:  # split_batches: samples_per_gpu is the global batch
        return batches
    if batches % ngpus == 0 or drop_last:
        return batches // ngpus
    return batches // ngpus + 1  # even_batches repeats samples; uneven: process 0 has one more


def _accumulation(cfg) -> int:
    """As the runner's builder: Accelerate's setting, else mmcv's cumulative_iters."""
    cumulative = (cfg.get("optimizer_config") or {}).get("cumulative_iters", 1)
    acc_cfg = cfg.get("accelerator") or {}
    return int(
        os.environ.get(
            "ACCELERATE_GRADIENT_ACCUMULATION_STEPS",
            acc_cfg.get("gradient_accumulation_steps", cumulative),
        )
    )


@dataclass(frozen=True)
class _RunGeometry:
    """How many iterations and optimizer steps the configured run makes."""

    dataset_size: int
    samples_per_gpu: int
    ngpus: int
    iters_per_epoch: int
    accumulation: int
    steps_per_epoch: int
    max_epochs: int | None  # None: an iteration-based run
    max_iters: int
    max_steps: int


def _run_geometry(cfg, dataset_size: int | None, ngpus: int) -> _RunGeometry:
    """The train loader's length as Accelerate shards it, and the run's length in
    iterations and optimizer steps."""
    if ngpus < 1:
        raise ToolError(f"--ngpus: must be at least 1, got {ngpus}")
    data = cfg.get("data") or {}
    loader = {**data, **(data.get("train_dataloader") or {})}
    spg = loader.get("samples_per_gpu", 32)
    drop_last = bool(loader.get("drop_last", False))
    acc_cfg = cfg.get("accelerator") or {}
    num = _dataset_size(cfg, dataset_size)
    length = iters_per_epoch(
        num,
        spg,
        ngpus,
        drop_last,
        acc_cfg.get("split_batches", False),
        acc_cfg.get("even_batches", True),
    )
    if length == 0:
        raise ToolError(
            f"{num} samples make no full batch of {spg} x {ngpus} (drop_last=True): "
            f"an epoch has no iteration"
        )
    gas = _accumulation(cfg)
    steps_per_epoch = math.ceil(length / gas)
    runner_cfg = cfg.runner
    max_epochs = (
        runner_cfg.get("max_epochs") if runner_cfg.get("type") != "IterBasedRunner" else None
    )
    max_iters = max_epochs * length if max_epochs is not None else runner_cfg["max_iters"]
    max_steps = (
        max_epochs * steps_per_epoch if max_epochs is not None else math.ceil(max_iters / gas)
    )
    return _RunGeometry(
        num, spg, ngpus, length, gas, steps_per_epoch, max_epochs, max_iters, max_steps
    )


def _optimizer(cfg, scaling: LrScaling | None) -> tuple[Any, list[str]]:
    """The configured optimizer class on stand-in parameters: one group at the configured
    lr (scaled for the run's global batch, as the run scales it), plus one per paramwise
    lr multiplier."""
    import torch
    from torch import nn

    from ..optim import build_optimizer
    from ..optim.lr_scaling import GROUP_KEY

    opt_cfg = dict(cfg.optimizer)
    paramwise = opt_cfg.pop("paramwise_cfg", None) or {}
    notes = []
    if scaling is not None:
        notes.append(scaling.describe())
    if opt_cfg.pop("layer_decay", None) is not None:
        notes.append("layer_decay: the per-layer groups (lr x layer_decay^depth) are not drawn")
    probe = nn.Module()
    probe.weight = nn.Parameter(torch.zeros(1, 1))
    optimizer = build_optimizer(probe, opt_cfg, scaling)
    del optimizer.param_groups[1:]
    base = optimizer.param_groups[0]
    base["name"] = "default"
    mults = {}
    if paramwise.get("bias_lr_mult", 1.0) != 1.0:
        mults["bias"] = paramwise["bias_lr_mult"]
    for key, rule in (paramwise.get("custom_keys") or {}).items():
        if rule.get("lr_mult", 1.0) != 1.0:
            mults[f"custom_keys['{key}']"] = rule["lr_mult"]
    for name, mult in mults.items():
        group = {"params": [nn.Parameter(torch.zeros(1))], "lr": base["lr"] * mult, "name": name}
        if GROUP_KEY in base:
            group[GROUP_KEY] = base[GROUP_KEY]
        optimizer.add_param_group(group)
    return optimizer, notes


def _hooks(cfg) -> list:
    from ..hooks.param_scheduler import LrUpdaterHook, MomentumUpdaterHook

    hooks = []
    for key, cls in (("lr_config", LrUpdaterHook), ("momentum_config", MomentumUpdaterHook)):
        sub = cfg.get(key)
        if sub is None:
            continue
        hook = cls.from_config(sub)
        lists = [
            k for k in hook.spec.per_group if isinstance(hook.policy_args.get(k), (list, tuple))
        ]
        if lists:
            raise ToolError(
                f"{key}.{lists[0]}: a list (one value per param group) follows the "
                f"model's param groups, which vis-lr does not build; give one value "
                f"to see the schedule"
            )
        hooks.append(hook)
    return hooks


def _step_iterations(geo: _RunGeometry) -> Iterator[tuple[int, int]]:
    """(epoch, iteration) of every iteration that ends with an optimizer step."""
    gas, length = geo.accumulation, geo.iters_per_epoch
    for it in range(geo.max_iters):
        epoch, inner = divmod(it, length)
        # Accelerate: a step at the end of every window and at the end of the loader; the
        # OptimizerHook also steps on the last iteration of an iteration-based run
        if (
            gas > 1
            and (inner + 1) % gas
            and inner != length - 1
            and not (geo.max_epochs is None and it == geo.max_iters - 1)
        ):
            continue
        yield epoch, it


def _schedule_record(
    cfg, geo: _RunGeometry, optimizer, notes: list[str], scaling: LrScaling | None
) -> dict[str, Any]:
    """The output with the run's settings and empty per-step lists (the key order is the
    order of the JSON file)."""
    groups = optimizer.param_groups
    out: dict[str, Any] = {
        "config": cfg.filename,
        "dataset_size": geo.dataset_size,
        "samples_per_gpu": geo.samples_per_gpu,
        "ngpus": geo.ngpus,
        "iters_per_epoch": geo.iters_per_epoch,
        "gradient_accumulation_steps": geo.accumulation,
        "steps_per_epoch": geo.steps_per_epoch,
        "max_epochs": geo.max_epochs,
        "max_iters": geo.max_iters,
        "max_steps": geo.max_steps,
        "optimizer": type(optimizer).__name__,
        "lr_scaling": scaling.as_dict() if scaling is not None else None,
        "lr_config": cfg.get("lr_config"),
        "momentum_config": cfg.get("momentum_config"),
        "step": [],
        "epoch": [],
        "iter": [],
        "lr": [],
        "groups": [{"name": g["name"], "base_lr": g["lr"], "lr": []} for g in groups],
        "notes": notes,
    }
    if "momentum" in groups[0] or "betas" in groups[0]:
        out["momentum"] = []
    return out


def _record_step(out: dict[str, Any], groups: list[dict], step: int, epoch: int, it: int) -> None:
    """Append the values the hooks set before optimizer step ``step``."""
    out["step"].append(step)
    out["epoch"].append(epoch)
    out["iter"].append(it)
    for g, rec in zip(groups, out["groups"], strict=True):
        rec["lr"].append(g["lr"])
    out["lr"].append(groups[0]["lr"])
    if "momentum" in out:
        g = groups[0]
        out["momentum"].append(g["betas"][0] if "betas" in g else g["momentum"])


def lr_schedule(cfg: Config, dataset_size: int | None = None, ngpus: int = 1) -> dict[str, Any]:
    """Every optimizer step of the run ``cfg`` describes, with the lr of each drawn
    group and the momentum: the values the hooks set before that step."""
    from ..optim.lr_scaling import lr_scaling, per_process_batch

    geo = _run_geometry(cfg, dataset_size, ngpus)
    split = (cfg.get("accelerator") or {}).get("split_batches", False)
    per_process = per_process_batch(geo.samples_per_gpu, geo.ngpus, split)
    scaling = lr_scaling(cfg, per_process, geo.ngpus, geo.accumulation)
    optimizer, notes = _optimizer(cfg, scaling)
    groups = optimizer.param_groups
    hooks = _hooks(cfg)
    runner = types.SimpleNamespace(
        optimizer=optimizer,
        max_epochs=geo.max_epochs,
        max_steps=geo.max_steps,
        steps_per_epoch=geo.steps_per_epoch,
        max_iters=geo.max_iters,  # lr_config.unit='iter' counts iterations
        epoch_length=geo.iters_per_epoch,
        step=0,
        iter=0,
        epoch=0,
    )
    for hook in hooks:
        hook.before_run(runner)  # the run's own checks (ConfigError) and base values
    # after before_run: the record's base lr and momentum key are the ones the run starts from
    out = _schedule_record(cfg, geo, optimizer, notes, scaling)
    for step, (epoch, it) in enumerate(_step_iterations(geo)):
        runner.step, runner.iter, runner.epoch = step, it, epoch
        for hook in hooks:  # LrUpdaterHook (VERY_HIGH) then MomentumUpdaterHook (HIGH)
            hook.before_train_iter(runner)
        _record_step(out, groups, step, epoch, it)
    return out
