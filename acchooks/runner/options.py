"""The option sets :mod:`acchooks.runner.builder` reads: ``accelerator``, the data
loaders (``data.samples_per_gpu``, ``data.workers_per_gpu``, ``data.<split>_dataloader``)
and ``log_config``.

The builder takes its defaults from here; :mod:`acchooks.config.schema` checks configs
against the same declarations. Plain Python only: the first pass of the config check
reads ``ACCELERATOR`` before torch is imported (see
:func:`acchooks.config.optionset.declarations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config.checks import (
    anything,
    boolean,
    instance_of,
    non_negative_int,
    one_of,
    positive_int,
)
from ..config.optionset import Option, OptionSet, section

MIXED_PRECISION = ("no", "fp16", "bf16", "fp8")

ACCELERATOR = OptionSet(
    "accelerator",
    [
        Option(
            "mixed_precision",
            one_of(MIXED_PRECISION),
            "no",
            "fp16 also with mmcv's `fp16=dict(loss_scale=..)`; "
            "`accelerate launch --mixed_precision` wins",
        ),
        Option(
            "gradient_accumulation_steps",
            positive_int,
            None,
            "None: optimizer_config.cumulative_iters (mmcv's name), else 1",
        ),
        Option("cpu", boolean, False, "train on CPU processes even where GPUs exist"),
        Option("find_unused_parameters", boolean, False, "DDP's find_unused_parameters"),
        Option("split_batches", boolean, False, "Accelerate: split each batch over processes"),
        Option("even_batches", boolean, True, "Accelerate: pad the last batches to equal size"),
    ],
    "``accelerator=dict(...)``: how the Accelerator is made (``build_accelerator``).",
)

DATALOADER = OptionSet(
    "data.train_dataloader",
    [
        Option("samples_per_gpu", positive_int, None, "None: data.samples_per_gpu"),
        Option("workers_per_gpu", non_negative_int, None, "None: data.workers_per_gpu"),
        Option("shuffle", boolean, None, "None: True for the train split"),
        Option("drop_last", boolean, False),
        Option("pin_memory", boolean, False),
        Option("persistent_workers", boolean, None, "None: workers_per_gpu > 0"),
    ],
    "``data.<split>_dataloader=dict(...)``: one split's DataLoader (``build_dataloader``).",
)

SPLITS = ("train", "val", "test")

DATA = OptionSet(
    "data",
    [
        Option("train", anything, None, "the train dataset", required="required for training"),
        Option("val", anything, None, "the val dataset (val workflow phases, EvalHook)"),
        Option("test", anything, None, "the test dataset (tools/test)"),
        *(section(f"{s}_dataloader", DATALOADER) for s in SPLITS),
        Option("samples_per_gpu", positive_int, 32, "batch size per process"),
        Option("workers_per_gpu", non_negative_int, 2, "DataLoader workers per process"),
    ],
    "``data=dict(...)``: the datasets (checked by their classes) and loader settings.",
)

LOG_CONFIG = OptionSet(
    "log_config",
    [
        Option("interval", positive_int, 10, "log every N train iterations"),
        Option("hooks", instance_of(list, tuple), (), "the logger hooks, dict(type=...)"),
    ],
    "``log_config=dict(interval=50, hooks=[dict(type='TextLoggerHook')])``.",
)


def loader_options(data_cfg: Mapping[str, Any], split: str, train: bool) -> dict[str, Any]:
    """Every DataLoader option of ``split``, defaults filled in (as ``build_dataloader``
    uses them): ``data.<split>_dataloader`` over ``data``'s own keys over the defaults."""
    data = DATA.resolve(data_cfg)
    opts = DATALOADER.resolve(
        data_cfg.get(f"{split}_dataloader"),
        samples_per_gpu=data["samples_per_gpu"],
        workers_per_gpu=data["workers_per_gpu"],
        shuffle=train,
    )
    if opts["persistent_workers"] is None:
        opts["persistent_workers"] = opts["workers_per_gpu"] > 0
    return opts
