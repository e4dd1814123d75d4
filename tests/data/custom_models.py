"""Test-only models: a plain nn.Module and one with its own train_step/val_step."""

import torch
from torch import nn

from acchooks import MODELS


@MODELS.register_module()
class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 4, width: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


@MODELS.register_module()
class SelfStepping(TinyNet):
    """Computes its own losses, as MMCV models do; counts its calls."""

    train_calls = 0

    def train_step(self, batch, optimizer):
        type(self).train_calls += 1
        x, y = batch
        logits = self(x)
        loss_cls = nn.functional.cross_entropy(logits, y)
        loss_reg = 1e-3 * logits.pow(2).mean()
        return dict(
            loss=loss_cls + loss_reg,
            log_vars=dict(loss_cls=loss_cls.detach(), loss_reg=loss_reg.detach()),
            num_samples=len(x),
        )

    def val_step(self, batch, optimizer=None):
        x, y = batch
        return dict(loss=nn.functional.cross_entropy(self(x), y), num_samples=len(x))
