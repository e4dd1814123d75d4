"""A model without BatchNorm for exact-arithmetic tests: gradient accumulation must give
the weights of one big batch, which BatchNorm's per-batch statistics would prevent."""

from __future__ import annotations

from torch import nn

from acchooks.registry import MODELS
from acchooks.testing import tiny_config


@MODELS.register_module(force=True)
class ToyMLP(nn.Module):
    def __init__(self, in_features: int = 3 * 8 * 8, hidden: int = 16, num_classes: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.LayerNorm(hidden),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.net(x)


def mlp_config(work_dir, num_samples: int = 32, **overrides):
    """tiny_config with the MLP on 8 px images (fast), no val, log every iteration."""
    base = dict(
        model=dict(_delete_=True, type="ToyMLP"),
        data=dict(train=dict(num_samples=num_samples, img_size=8, is_training=False), val=None),
        log_config=dict(interval=1, hooks=[dict(type="TextLoggerHook")]),
    )
    cfg = tiny_config(work_dir, **base)
    cfg["data"].pop("val", None)
    from acchooks.config.options import merge_dicts, strip_delete

    return type(cfg)(strip_delete(merge_dicts(cfg.to_dict(), overrides)), filename=cfg.filename)
