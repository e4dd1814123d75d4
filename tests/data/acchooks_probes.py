"""Test helpers loaded through ``custom_imports``: a BatchNorm-free model and probe hooks
that dump per-process tensors, so 2-process runs can be checked from the outside."""

from __future__ import annotations

import os

import torch
from safetensors.torch import save_file
from torch import nn

from acchooks import HOOKS, Hook
from acchooks.registry import MODELS


@MODELS.register_module(force=True)
def TinyConvNet(num_classes: int = 4) -> nn.Module:
    """No BatchNorm: with lr=0 its weights, and so its predictions, never change."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


def _dump(runner, name: str, tensors: dict[str, torch.Tensor]) -> None:
    rank = runner.accelerator.process_index
    path = os.path.join(runner.work_dir, f"{name}_rank{rank}.safetensors")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path)


@HOOKS.register_module(force=True)
class BufferProbe(Hook):
    """Writes this process's buffers after each train epoch (and the EMA after the run)."""

    def __init__(self, tag: str = "buffers"):
        self.tag = tag

    def after_train_epoch(self, runner) -> None:
        _dump(
            runner,
            f"{self.tag}_epoch{runner.epoch + 1}",
            dict(runner.unwrapped_model.named_buffers()),
        )

    def after_run(self, runner) -> None:
        for h in runner.hooks.hooks:
            if type(h).__name__ == "EMAHook":
                _dump(runner, f"{self.tag}_ema", h.ema_state_dict())
