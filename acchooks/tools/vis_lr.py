"""``acchooks vis-lr CFG [--dataset-size N] [--ngpus N] --out lr.png [--json lr.json]``

The learning rate (and the momentum, when the optimizer has one) of every optimizer step
of the configured run, computed by the hooks a run uses (``LrUpdaterHook`` and
``MomentumUpdaterHook`` from ``lr_config`` / ``momentum_config``, the same
``before_run`` / ``before_train_iter`` code) on the real optimizer class, without
building the model or reading the data:

* iterations per epoch from the dataset size (``--dataset-size``, or ``num_samples`` of
  a ``Shapes`` train set), ``samples_per_gpu``, ``--ngpus`` and ``drop_last``, as
  Accelerate shards the train loader (``accelerator.split_batches`` / ``even_batches``);
* gradient accumulation (``accelerator.gradient_accumulation_steps`` or mmcv's
  ``optimizer_config.cumulative_iters``) gives one optimizer step per window, the last
  window of an epoch being shorter, as Accelerate syncs at the end of the loader (and an
  iteration-based run steps on its last iteration, as the OptimizerHook arranges).

With ``paramwise_cfg``, the groups whose lr is the optimizer's lr times a multiplier
(``bias_lr_mult``, ``custom_keys[..].lr_mult``) are drawn too; ``layer_decay`` groups
are not (their number depends on the model): the plotted group is the one at the
optimizer's lr.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import types
from typing import Any

from ..config import DictAction
from ..errors import ConfigError
from . import ToolError
from .print_config import load_checked_config

# problems of the model and the data do not change the schedule: not checked here
_NOT_CHECKED = (
    "model",
    "load_from",
    "resume_from",
    "data.train.",
    "data.train:",
    "data.train ",
    "data.val",
    "data.test",
    "workflow",
)


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


def _optimizer(cfg) -> tuple[Any, list[str]]:
    """The configured optimizer class on stand-in parameters: one group at the configured
    lr, plus one per paramwise lr multiplier."""
    import torch
    from torch import nn

    from ..optim import build_optimizer

    opt_cfg = dict(cfg.optimizer)
    paramwise = opt_cfg.pop("paramwise_cfg", None) or {}
    notes = []
    if opt_cfg.pop("layer_decay", None) is not None:
        notes.append("layer_decay: the per-layer groups (lr x layer_decay^depth) are not drawn")
    probe = nn.Module()
    probe.weight = nn.Parameter(torch.zeros(1, 1))
    optimizer = build_optimizer(probe, opt_cfg)
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
        optimizer.add_param_group(
            {"params": [nn.Parameter(torch.zeros(1))], "lr": base["lr"] * mult, "name": name}
        )
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


def lr_schedule(cfg, dataset_size: int | None = None, ngpus: int = 1) -> dict[str, Any]:
    """Every optimizer step of the run ``cfg`` describes, with the lr of each drawn
    group and the momentum: the values the hooks set before that step."""
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

    optimizer, notes = _optimizer(cfg)
    groups = optimizer.param_groups
    hooks = _hooks(cfg)
    runner = types.SimpleNamespace(
        optimizer=optimizer,
        max_epochs=max_epochs,
        max_steps=max_steps,
        steps_per_epoch=steps_per_epoch,
        step=0,
        epoch=0,
    )
    for hook in hooks:
        hook.before_run(runner)  # the run's own checks (ConfigError) and base values
    has_momentum = "momentum" in groups[0] or "betas" in groups[0]
    out: dict[str, Any] = {
        "config": cfg.filename,
        "dataset_size": num,
        "samples_per_gpu": spg,
        "ngpus": ngpus,
        "iters_per_epoch": length,
        "gradient_accumulation_steps": gas,
        "steps_per_epoch": steps_per_epoch,
        "max_epochs": max_epochs,
        "max_iters": max_iters,
        "max_steps": max_steps,
        "optimizer": type(optimizer).__name__,
        "lr_config": cfg.get("lr_config"),
        "momentum_config": cfg.get("momentum_config"),
        "step": [],
        "epoch": [],
        "iter": [],
        "lr": [],
        "groups": [{"name": g["name"], "base_lr": g["lr"], "lr": []} for g in groups],
        "notes": notes,
    }
    if has_momentum:
        out["momentum"] = []
    step = 0
    for it in range(max_iters):
        epoch, inner = divmod(it, length)
        # Accelerate: a step at the end of every window and at the end of the loader; the
        # OptimizerHook also steps on the last iteration of an iteration-based run
        if (
            gas > 1
            and (inner + 1) % gas
            and inner != length - 1
            and not (max_epochs is None and it == max_iters - 1)
        ):
            continue
        runner.step, runner.epoch = step, epoch
        for hook in hooks:  # LrUpdaterHook (VERY_HIGH) then MomentumUpdaterHook (HIGH)
            hook.before_train_iter(runner)
        out["step"].append(step)
        out["epoch"].append(epoch)
        out["iter"].append(it)
        for g, rec in zip(groups, out["groups"], strict=True):
            rec["lr"].append(g["lr"])
        out["lr"].append(groups[0]["lr"])
        if has_momentum:
            g = groups[0]
            out["momentum"].append(g["betas"][0] if "betas" in g else g["momentum"])
        step += 1
    return out


def plot_schedule(sched: dict[str, Any], out: str, title: str | None = None) -> None:
    from matplotlib.figure import Figure

    panels = 2 if "momentum" in sched else 1
    fig = Figure(figsize=(8, 1.6 + 2.8 * panels), layout="constrained")
    axes = fig.subplots(panels, 1, squeeze=False, sharex=True)[:, 0]
    steps = sched["step"]
    for i, g in enumerate(sched["groups"]):
        axes[0].plot(
            steps,
            g["lr"],
            linewidth=1.6 if i == 0 else 1.0,
            label=f"{g['name']} (base lr {g['base_lr']:.3g})",
        )
    axes[0].set_ylabel("learning rate")
    axes[0].legend(fontsize="small")
    if panels == 2:
        axes[1].plot(steps, sched["momentum"], color="tab:orange", linewidth=1.4)
        axes[1].set_ylabel("momentum")
        axes[1].set_title("momentum (SGD momentum / Adam beta1)", fontsize="medium")
    spe = sched["steps_per_epoch"]
    for ax in axes:
        ax.grid(True, alpha=0.3)
        if sched["max_epochs"] is not None and sched["max_epochs"] <= 50:
            for e in range(1, sched["max_epochs"]):
                ax.axvline(e * spe - 0.5, color="grey", linewidth=0.5, alpha=0.4)
    axes[-1].set_xlabel(
        f"optimizer step ({spe} per epoch of {sched['iters_per_epoch']} "
        f"iterations, accumulation {sched['gradient_accumulation_steps']})"
    )
    if sched["max_epochs"] is not None:
        top = axes[0].secondary_xaxis("top", functions=(lambda s: s / spe, lambda e: e * spe))
        top.set_xlabel("epoch")
    name = os.path.basename(sched["config"] or "config")
    lr_cfg = sched["lr_config"] or {"policy": "fixed"}
    policy = lr_cfg.get("policy", lr_cfg.get("type", "?"))
    warm = (
        f", warmup {lr_cfg['warmup']} {lr_cfg.get('warmup_iters')}" if lr_cfg.get("warmup") else ""
    )
    fig.suptitle(title or f"{name}: {sched['optimizer']}, {policy}{warm}, {len(steps)} steps")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=80, format="png")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "vis-lr",
        help="plot the LR / momentum of every optimizer step of a config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="CFG", help="Python config file")
    p.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="override config keys: a.b=1 c=[1,2] d=None",
    )
    p.add_argument(
        "--dataset-size",
        type=int,
        help="train samples (default: num_samples of a Shapes train set)",
    )
    p.add_argument("--ngpus", type=int, default=1, help="processes the run uses (default 1)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--json", help="also write every step's values to this JSON file")
    p.add_argument("--title", help="figure title")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    cfg, _ = load_checked_config(args.config, args.cfg_options, ignore=_NOT_CHECKED)
    try:
        sched = lr_schedule(cfg, args.dataset_size, args.ngpus)
    except ConfigError as e:  # the hooks' before_run checks (e.g. cyclic phases vs run length)
        raise ConfigError(e.problems, source=args.config) from None
    plot_schedule(sched, args.out, args.title)
    if args.json:
        from .plot_curves import dump_json

        dump_json(sched, args.json)
    for note in sched["notes"]:
        print(f"note: {note}")
    lrs = sched["lr"]
    print(
        f"{len(sched['step'])} optimizer steps ({sched['iters_per_epoch']} iterations per "
        f"epoch, {sched['steps_per_epoch']} steps per epoch); lr from {lrs[0]:.4g}, max "
        f"{max(lrs):.4g}, to {lrs[-1]:.4g}"
        if lrs
        else "no optimizer step"
    )
    print(f"written to {args.out}" + (f" and {args.json}" if args.json else ""))
    return 0
