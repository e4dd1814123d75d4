"""A toy kit for testing hooks: a tiny config and an in-process run.

    from acchooks.testing import tiny_config, run_config
    cfg = tiny_config(tmp_path, custom_hooks=[dict(type='MyHook', a=1, b=2)])
    runner = run_config(cfg)

The model is timm's ``test_resnet`` and the data a few dozen generated Shapes images,
so a run takes a second or two on a CPU.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from ..config import Config
from ..config.options import merge_dicts, strip_delete

TINY = dict(
    model=dict(type="TimmClassifier", model_name="test_resnet", num_classes=4, pretrained=False),
    data=dict(
        samples_per_gpu=8,
        workers_per_gpu=0,
        train=dict(
            type="Shapes", num_samples=32, img_size=32, num_classes=4, seed=0, is_training=True
        ),
        val=dict(type="Shapes", num_samples=20, img_size=32, num_classes=4, seed=1),
    ),
    optimizer=dict(type="SGD", lr=0.01, momentum=0.9),
    optimizer_config=dict(grad_clip=None),
    lr_config=dict(policy="fixed"),
    runner=dict(type="EpochBasedRunner", max_epochs=2),
    log_config=dict(interval=1, hooks=[dict(type="TextLoggerHook")]),
    workflow=[("train", 1)],
    seed=0,
)


def tiny_config(work_dir: str | os.PathLike, **overrides: Any) -> Config:
    """The tiny config with ``overrides`` merged in (dicts merge recursively, as in
    ``_base_`` inheritance; ``_delete_=True`` replaces)."""
    cfg = strip_delete(merge_dicts(copy.deepcopy(TINY), overrides))
    cfg["work_dir"] = os.fspath(work_dir)
    return Config(cfg, filename="tiny_config.py")


def run_config(cfg: Config, timestamp: str | None = None):
    """Check, build and run ``cfg`` in this process; returns the finished Runner."""
    from ..config.schema import check_or_raise
    from ..logging import get_logger
    from ..runner import build_runner

    check_or_raise(cfg, cfg.filename)
    from ..hooks.logger.text import now_timestamp

    os.makedirs(cfg.work_dir, exist_ok=True)
    timestamp = timestamp or now_timestamp(cfg.work_dir)
    logger = get_logger(os.path.join(cfg.work_dir, f"{timestamp}.log"))
    runner = build_runner(cfg, logger, timestamp)
    runner.run()
    return runner


def launch_command(num_processes: int = 2, mixed_precision: str = "no", *extra: str) -> list[str]:
    """``accelerate launch`` for ``num_processes`` processes on this machine (DDP over gloo
    on CPUs: Accelerate reports MULTI_CPU), dynamo off; put the script and its arguments
    after it. ``extra`` are more launcher options."""
    import sys

    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    return [
        accelerate,
        "launch",
        "--multi_gpu",
        *("--num_processes", str(num_processes), "--num_machines", "1"),
        *("--mixed_precision", mixed_precision, "--dynamo_backend", "no"),
        *extra,
    ]


def train_losses(work_dir: str | os.PathLike) -> list[tuple[int, float, float]]:
    """(step, loss, lr) of every train record in the run's JSON log
    (``<timestamp>.log.json``; the work dir must hold one): two runs trained alike, or a
    resumed run and the part of a straight run after the resume point, compare equal."""
    import json
    from pathlib import Path

    (log,) = Path(work_dir).glob("*.log.json")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [(r["step"], r["loss"], r["lr"]) for r in records if r.get("mode") == "train"]


def same_weights(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether checkpoints ``a`` and ``b`` hold bitwise equal model weights."""
    import torch
    from safetensors.torch import load_file

    ta = load_file(os.path.join(a, "model.safetensors"))
    tb = load_file(os.path.join(b, "model.safetensors"))
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
