"""mmcv's fp16 loss scale on Accelerate's GradScaler.

MMClassification's ``fp16 = dict(loss_scale=...)`` (mmcv's
``optimizer_config=dict(type='Fp16OptimizerHook', loss_scale=...)`` is translated into it,
:mod:`acchooks.config.mmcv_compat`) means what it means in
mmcv 1.x's ``Fp16OptimizerHook`` on torch's AMP:

* a number (mmcv's default ``512.``): a *static* scale: mmcv calls
  ``GradScaler.update(loss_scale)`` every step, so the scale never grows or backs off
  (steps whose gradients overflow are still skipped);
* ``'dynamic'``: torch's ``GradScaler()`` with its defaults;
* a dict: ``GradScaler(**loss_scale)`` (``init_scale``, ``growth_factor``,
  ``backoff_factor``, ``growth_interval``).

On a CPU Accelerate does no fp16 loss scaling (the run trains in fp32 and says so).
This module imports only plain Python at the top: the config check reads :data:`FP16`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config.checks import Check, is_number
from ..config.optionset import Option, OptionSet

DEFAULT_LOSS_SCALE = 512.0  # mmcv's Fp16OptimizerHook default
SCALER_KEYS = ("init_scale", "growth_factor", "backoff_factor", "growth_interval")

LOSS_SCALE = Check(
    f"'dynamic', a positive number (a static scale) or a dict of GradScaler arguments "
    f"({', '.join(SCALER_KEYS)})",
    lambda v: (
        v == "dynamic"
        or (is_number(v) and v > 0)
        or (
            isinstance(v, Mapping)
            and all(k in SCALER_KEYS for k in v)
            and all(is_number(x) for x in v.values())
        )
    ),
)

# MMClassification's IPU configs add these to fp16; IPUs (Graphcore) are not a target
IPU_ONLY = Check(
    "no value: it is an option of mmcv's IPU (Graphcore) runner, which acchooks does not "
    "run on; remove it (fp16 on GPUs needs only loss_scale)",
    lambda v: v is None,
)

FP16 = OptionSet(
    "fp16",
    [
        Option("loss_scale", LOSS_SCALE, DEFAULT_LOSS_SCALE, "mmcv's meaning (module doc)"),
        Option("accum_type", IPU_ONLY, None, "mmcv's IPU option: refused"),
        Option("velocity_accum_type", IPU_ONLY, None, "mmcv's IPU option: refused"),
    ],
    "``fp16=dict(loss_scale=512.)``: fp16 mixed precision with mmcv's loss scale.",
)


def fp16_config(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The resolved ``fp16`` options, None without ``fp16`` (mmcv's
    ``Fp16OptimizerHook`` is translated into ``fp16`` by the config check)."""
    return None if cfg.get("fp16") is None else FP16.resolve(cfg["fp16"])


def scaler_settings(loss_scale: Any) -> tuple[dict[str, Any], float | None]:
    """(GradScaler arguments, the static scale or None) for mmcv's ``loss_scale``."""
    if loss_scale == "dynamic":
        return {}, None
    if isinstance(loss_scale, Mapping):
        return dict(loss_scale), None
    return {"init_scale": float(loss_scale)}, float(loss_scale)


def pin_scale(scaler: Any, scale: float) -> None:
    """Make ``scaler`` (a torch GradScaler) static at ``scale``, as mmcv does: every
    ``update()`` (which Accelerate calls after each step) becomes ``update(scale)``."""
    update = scaler.update

    def static_update(new_scale: Any = None) -> None:
        update(scale)

    scaler.update = static_update
