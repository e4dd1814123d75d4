"""The values of the hyperparameters many optimizers share (``optimizer.lr``,
``momentum``, ``weight_decay``, ``betas``, ...), checked before anything is built.

Which keys an optimizer accepts is its class's (or timm's factory's) signature, walked by
:func:`acchooks.optim.builder.check_optimizer_config`; this declares what a value of
each common key must be, whatever the optimizer, so ``optimizer.lr='fast'`` is a config
error rather than a ``TypeError`` from inside torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config.checks import (
    Check,
    boolean,
    is_number,
    number_at_least,
    one_of,
    optional,
    positive_float,
    positive_int,
    problems_of,
)
from ..config.optionset import Option, OptionSet

_BETA = Check("a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1)
_BETAS = Check(
    "a pair of numbers in [0, 1) such as (0.9, 0.999)",
    lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_BETA.ok(b) for b in v),
)

HYPERPARAMETERS = OptionSet(
    "optimizer",
    [
        Option("lr", number_at_least(0), None, "the base learning rate"),
        Option("momentum", number_at_least(0), None, "SGD, RMSprop, timm's sgd/lars"),
        Option("weight_decay", number_at_least(0), None, "L2 penalty or decoupled decay"),
        Option("dampening", number_at_least(0), None, "SGD"),
        Option("betas", _BETAS, None, "Adam-like optimizers"),
        Option("nesterov", boolean, None, "SGD"),
        Option("amsgrad", boolean, None, "Adam, AdamW"),
    ],
    "Values of the hyperparameters shared by many optimizers (only those given are checked).",
)


def hyperparameter_problems(kwargs: Mapping[str, Any], path: str = "optimizer") -> list[str]:
    """A message for each given hyperparameter of :data:`HYPERPARAMETERS` whose value
    fails its check (keys it does not declare are the signature check's)."""
    return problems_of(
        *(
            (o.check, kwargs[o.name], f"{path}.{o.name}")
            for o in HYPERPARAMETERS
            if o.name in kwargs
        )
    )


# ------------------------------------------------------------------ LR scaling
# (consumed by acchooks.optim.lr_scaling; see there and docs/recipes.md)
SCALE_RULES = ("linear", "sqrt")

AUTO_SCALE_LR = OptionSet(
    "auto_scale_lr",
    [
        Option("enable", boolean, False, "scale optimizer.lr by global batch / base_batch_size"),
        Option(
            "base_batch_size",
            positive_int,
            None,
            "the global batch optimizer.lr was tuned for (required when enabled)",
        ),
    ],
    "mmengine's / MMClassification 1.x's ``auto_scale_lr=dict(base_batch_size=256, "
    "enable=True)``: linear LR scaling by the global batch.",
)

LR_BASE = OptionSet(
    "optimizer",
    [
        Option("lr_base", positive_float, None, "timm's --lr-base: the lr for lr_base_size"),
        Option("lr_base_size", positive_int, 256, "timm's --lr-base-size"),
        Option(
            "lr_base_scale",
            optional(one_of((*SCALE_RULES, ""))),
            None,
            "timm's --lr-base-scale; None: 'sqrt' for optimizers named *ada*/*lamb*, else 'linear'",
        ),
    ],
    "timm train.py's ``lr = lr_base * (global batch / lr_base_size)`` (or its square "
    "root), given in ``optimizer`` instead of ``lr``.",
)
