"""``acchooks vis-lr CFG [--dataset-size N] [--num-processes N] --out lr.png [--json lr.json]``

The learning rate (and the momentum, when the optimizer has one) of every optimizer step
of the configured run, computed by the hooks a run uses (``LrUpdaterHook`` and
``MomentumUpdaterHook`` from ``lr_config`` / ``momentum_config``, the same
``before_run`` / ``before_train_iter`` code) on the real optimizer class, without
building the model or reading the data:

* iterations per epoch from the dataset size (``--dataset-size``, or ``num_samples`` of
  a ``Shapes`` train set), ``samples_per_gpu``, ``--num-processes`` (alias ``--ngpus``)
  and ``drop_last``, as
  Accelerate shards the train loader (``accelerator.split_batches`` / ``even_batches``);
* gradient accumulation (``accelerator.gradient_accumulation_steps`` or mmcv's
  ``optimizer_config.cumulative_iters``) gives one optimizer step per window, the last
  window of an epoch being shorter, as Accelerate syncs at the end of the loader (and an
  iteration-based run steps on its last iteration, as the OptimizerHook arranges);
* LR scaling (``auto_scale_lr``, ``optimizer.lr_base``) for the global batch of that
  many processes, as the run scales it (the note line says how).

With ``paramwise_cfg``, the groups whose lr is the optimizer's lr times a multiplier
(``bias_lr_mult``, ``custom_keys[..].lr_mult``) are drawn too; ``layer_decay`` groups
are not (their number depends on the model): the plotted group is the one at the
optimizer's lr.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..config import DictAction
from ..errors import ConfigError
from .lr_simulation import iters_per_epoch, lr_schedule
from .print_config import load_checked_config

__all__ = ["add_parser", "iters_per_epoch", "lr_schedule", "plot_schedule", "run"]

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


def plot_schedule(sched: dict[str, Any], out: str, title: str | None = None) -> None:
    """Draw :func:`lr_schedule`'s ``sched`` (lr of every group, and momentum) to PNG ``out``."""
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
    """Register ``acchooks vis-lr``."""
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
    p.add_argument(
        "--num-processes",
        "--ngpus",
        dest="ngpus",
        type=int,
        default=1,
        help="processes the run uses (default 1): the global batch, the LR scaling",
    )
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--json", help="also write every step's values to this JSON file")
    p.add_argument("--title", help="figure title")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``acchooks vis-lr``: plot (and optionally dump) the schedule; the exit status."""
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
