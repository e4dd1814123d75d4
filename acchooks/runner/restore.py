"""Loading a checkpoint's model and optimizer state into the run, after checking that
they fit (shapes, parameter groups, optimizer type); unsharded states into FSDP shards."""

from __future__ import annotations

from typing import Any

from ..checkpoint import check_compatible
from ..checkpoint.compat import check_model, check_optimizer
from ..errors import ConfigError
from .fsdp import ShapeView, full_shapes, is_fsdp, load_full_state


def check_model_and_optimizer(runner: Any, ckpt: Any, path: str) -> None:
    """Check ``ckpt`` against the run's model and optimizer without touching either:
    every problem in one ConfigError naming ``path``."""
    if is_fsdp(runner.accelerator):  # check against the unsharded shapes
        with full_shapes(runner.model) as shapes:
            problems = check_model(
                ckpt.model_state, ShapeView(shapes), f"{ckpt.path}/model.safetensors"
            )
            problems += check_optimizer(
                ckpt.optimizer_state,
                runner.optimizer,
                f"{ckpt.path}/optimizer.json",
                ckpt.meta.get("optimizer_type"),
            )
    else:
        problems = check_compatible(ckpt, runner.unwrapped_model, runner.optimizer)
    if problems:
        raise ConfigError([f"resume_from {path}: {p}" for p in problems])


def load_model_and_optimizer(runner: Any, ckpt: Any) -> None:
    """Load a checked (:func:`check_model_and_optimizer`) checkpoint's model and optimizer
    state; unsharded states into FSDP shards."""
    if is_fsdp(runner.accelerator):
        load_full_state(runner.model, runner.optimizer, ckpt.model_state, ckpt.optimizer_state)
        return
    runner.unwrapped_model.load_state_dict(ckpt.model_state)
    runner.optimizer.load_state_dict(ckpt.optimizer_state)
