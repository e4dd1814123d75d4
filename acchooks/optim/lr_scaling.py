"""LR scaling by the global batch: mmengine's ``auto_scale_lr`` and timm's ``lr_base``.

Two ways to say "this lr was tuned for that batch", each as its reference spells it:

* ``auto_scale_lr=dict(base_batch_size=256, enable=True)`` (top-level, mmengine /
  MMClassification 1.x): ``lr = optimizer.lr * global_batch / base_batch_size``;
* ``optimizer=dict(type='AdamW', lr_base=5e-4, lr_base_size=512, lr_base_scale='linear')``
  (timm train.py's ``--lr-base``, ``--lr-base-size``, ``--lr-base-scale``, in place of
  ``lr``): ``lr = lr_base * (global_batch / lr_base_size)``, or its square root with
  ``'sqrt'``, the default for optimizers whose name contains ``ada`` or ``lamb``.

The global batch is the per-process batch (``data.samples_per_gpu``, divided over the
processes with Accelerate's ``split_batches``) x the number of processes x gradient
accumulation (``optimizer_config.cumulative_iters``), as timm counts it (mmengine leaves
accumulation out). :func:`per_process_batch` and :func:`global_batch` are the one place
it is computed (the run's ``meta['global_batch']``, the samplers, vis-lr).

**Where.** The factor is computed here once (:func:`lr_scaling`) and applied by
:func:`~acchooks.optim.builder.build_optimizer`: the configured lr is scaled before the
param groups are built, so every group (``paramwise_cfg`` multipliers, timm's layer
decay) is scaled alike. Each group also records the factor under :data:`GROUP_KEY`; the
``LrUpdaterHook`` scales the schedule's absolute learning rates (``min_lr``, OneCycle's
``max_lr``) by it, so the scaled run's schedule is the unscaled one times the factor
(warmup is a ratio already). Being part of the optimizer's param groups, the factor is
saved with the optimizer state: a resumed run keeps the checkpoint's scaled lr and
factor, whatever its own global batch, and says so when they differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .options import AUTO_SCALE_LR, LR_BASE

# the param-group key holding the factor (saved with the optimizer state)
GROUP_KEY = "lr_batch_scale"
# lr_config arguments that are absolute learning rates, scaled with the optimizer's lr
ABSOLUTE_LR_ARGS = ("min_lr", "max_lr")


def default_rule(optimizer_type: str) -> str:
    """timm train.py's default ``lr_base_scale``: 'sqrt' for adaptive optimizers (the
    name contains 'ada' or 'lamb'), else 'linear'."""
    name = str(optimizer_type).lower()
    return "sqrt" if any(o in name for o in ("ada", "lamb")) else "linear"


def per_process_batch(samples_per_gpu: int, num_processes: int, split_batches: bool) -> int:
    """The samples one process's step sees: with Accelerate's ``split_batches`` each
    loader batch of ``samples_per_gpu`` is divided over the processes."""
    return samples_per_gpu // num_processes if split_batches else samples_per_gpu


def global_batch(per_process: int, num_processes: int, accumulation: int) -> int:
    """The samples of one optimizer step over all processes."""
    return per_process * num_processes * accumulation


@dataclass(frozen=True)
class LrScaling:
    """One run's LR scaling: which key asked for it, the rule, the base lr and batch,
    and the run's global batch (per process x processes x accumulation)."""

    source: str  # 'auto_scale_lr' or 'optimizer.lr_base'
    rule: str  # 'linear' or 'sqrt'
    base_lr: float
    base_batch_size: int
    per_process: int
    num_processes: int
    accumulation: int

    @property
    def global_batch(self) -> int:
        return global_batch(self.per_process, self.num_processes, self.accumulation)

    @property
    def factor(self) -> float:
        """What the base lr is multiplied by (timm's ``batch_ratio``)."""
        ratio = self.global_batch / self.base_batch_size
        return ratio**0.5 if self.rule == "sqrt" else ratio

    @property
    def lr(self) -> float:
        """The scaled lr: the optimizer's lr before any per-group multiplier."""
        return self.base_lr * self.factor

    def describe(self) -> str:
        """The start-of-run log line."""
        return (
            f"LR scaling ({self.source}, {self.rule}): global batch {self.global_batch} = "
            f"{self.per_process} per process x {self.num_processes} processes x "
            f"{self.accumulation} accumulation; base lr {self.base_lr:g} for batch "
            f"{self.base_batch_size} -> lr {self.lr:g} (x{self.factor:g})"
        )

    def mark(self, optimizer: Any) -> None:
        """Record the factor in every param group (:data:`GROUP_KEY`)."""
        for group in optimizer.param_groups:
            group[GROUP_KEY] = self.factor

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the vis-lr JSON."""
        return {
            "source": self.source,
            "rule": self.rule,
            "base_lr": self.base_lr,
            "base_batch_size": self.base_batch_size,
            "global_batch": self.global_batch,
            "factor": self.factor,
            "lr": self.lr,
        }


def split_lr_base(opt_cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the optimizer config without timm's ``lr_base*`` keys, those keys). With
    ``lr_base``, ``lr=None`` (timm's unset ``--lr``, or a base config's lr set to None)
    is dropped too."""
    kwargs = {k: v for k, v in opt_cfg.items() if k not in LR_BASE}
    if "lr_base" in opt_cfg and "lr" in kwargs and kwargs["lr"] is None:
        del kwargs["lr"]
    return kwargs, {k: v for k, v in opt_cfg.items() if k in LR_BASE}


def lr_base_problems(given: Mapping[str, Any], has_lr: bool, path: str = "optimizer") -> list[str]:
    """Problems of the ``lr_base*`` keys of an optimizer config (``given``)."""
    if not given:
        return []
    problems = LR_BASE.problems(given, path)
    if "lr_base" not in given:
        problems += [
            f"{path}.{k}: needs optimizer.lr_base (the lr tuned for lr_base_size), or remove it"
            for k in given
        ]
    elif has_lr:
        problems.append(
            f"{path}: give lr (used as is) or lr_base (scaled by the global batch, "
            f"timm's --lr-base), not both (lr=None unsets an inherited lr)"
        )
    return problems


def check_lr_scaling(cfg: Mapping[str, Any]) -> list[str]:
    """The problems across keys: ``auto_scale_lr`` with ``optimizer.lr_base``, or
    enabled without ``base_batch_size`` or without ``optimizer.lr``."""
    auto, opt = cfg.get("auto_scale_lr"), cfg.get("optimizer")
    if not isinstance(auto, Mapping) or not isinstance(opt, Mapping):
        return []
    if auto.get("enable", AUTO_SCALE_LR["enable"].default) is not True:
        return []
    problems = []
    if "base_batch_size" not in auto:
        problems.append(
            "auto_scale_lr.base_batch_size: missing (required with enable=True): the "
            "global batch optimizer.lr was tuned for, e.g. 256 for an MMClassification "
            "8xb32 config"
        )
    if "lr_base" in opt:
        problems.append(
            "auto_scale_lr: enabled, and optimizer.lr_base scales the lr too; use one "
            "of them (auto_scale_lr.enable=False, or optimizer.lr instead of lr_base)"
        )
    elif opt.get("lr") is None:
        problems.append(
            "auto_scale_lr: enabled, but optimizer.lr is missing: give the lr tuned for "
            "base_batch_size"
        )
    return problems


def lr_scaling(
    cfg: Mapping[str, Any], per_process: int, num_processes: int, accumulation: int
) -> LrScaling | None:
    """The run's LR scaling (None: the configured lr is used as is). ``cfg`` is a
    checked config."""
    opt = cfg["optimizer"]
    _, base = split_lr_base(opt)
    geometry = {
        "per_process": per_process,
        "num_processes": num_processes,
        "accumulation": accumulation,
    }
    if base.get("lr_base") is not None:
        b = LR_BASE.resolve(base)
        rule = b["lr_base_scale"] or default_rule(opt["type"])
        return LrScaling("optimizer.lr_base", rule, b["lr_base"], b["lr_base_size"], **geometry)
    auto = AUTO_SCALE_LR.resolve(cfg.get("auto_scale_lr"))
    if auto["enable"]:
        return LrScaling("auto_scale_lr", "linear", opt["lr"], auto["base_batch_size"], **geometry)
    return None


def scale_schedule_args(args: dict[str, Any], group: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` (one param group's lr policy arguments) with the absolute learning rates
    scaled by the factor ``group`` records (unchanged without one)."""
    factor = group.get(GROUP_KEY)
    if factor is None or factor == 1.0:
        return args
    return {
        k: v * factor if k in ABSOLUTE_LR_ARGS and isinstance(v, (int, float)) else v
        for k, v in args.items()
    }


def report_lr_scaling(
    logger: Any, scaling: LrScaling | None, optimizer: Any, resumed: bool
) -> None:
    """Log the run's scaling once at start (the logger writes on the main process only);
    after a resume, say whether the checkpoint's scaling, which the run keeps, differs."""
    if scaling is not None:
        logger.info(scaling.describe())
    if not resumed:
        return
    group = optimizer.param_groups[0]
    saved = group.get(GROUP_KEY, 1.0)
    wanted = scaling.factor if scaling is not None else 1.0
    if math.isclose(saved, wanted, rel_tol=1e-12):
        return
    new = (
        f"this run's global batch {scaling.global_batch} would scale it x{wanted:g} "
        f"(lr {scaling.lr:g})"
        if scaling is not None
        else "this run asks for no LR scaling"
    )
    logger.warning(
        f"resume: the checkpoint's learning rates are kept: scaled x{saved:g} when its run "
        f"started (lr {group.get('initial_lr', group['lr']):g}); {new}. The schedule "
        f"continues as it started; to train at the new scale, start a new run with "
        f"load_from=<the checkpoint>"
    )
