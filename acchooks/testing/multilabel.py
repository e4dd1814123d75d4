"""``MultiLabelShapes``: generated images with multi-hot targets, for tests and dev tools.

Importing this module registers the dataset in ``DATASETS``. Each image is a
:class:`~acchooks.datasets.Shapes` image; its target is a float ``(num_classes,)``
vector with 1 for the drawn shape's kind, 1 for each other class with probability
``extra_positive`` (label noise: not in the image), and -1 ("difficult", as in
MMClassification's VOC) for a ``difficult`` fraction of the remaining labels. Everything
is deterministic from ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..datasets.shapes import Shapes
from ..registry import DATASETS

_OWN = ("extra_positive", "difficult")


def multi_hot_targets(
    labels: np.ndarray, num_classes: int, seed: int, extra_positive: float, difficult: float
) -> np.ndarray:
    """``(N, C)`` float32 targets of 1/0/-1 from single ``labels`` (module docstring)."""
    rng = np.random.default_rng([seed, 7])
    target = (rng.random((len(labels), num_classes)) < extra_positive).astype(np.float32)
    target[np.arange(len(labels)), labels] = 1.0
    hard = (rng.random(target.shape) < difficult) & (target == 0)
    target[hard] = -1.0
    return target


@DATASETS.register_module()
class MultiLabelShapes(Shapes):
    """Shapes images with multi-hot targets; ``__getitem__`` gives ``(CxHxW, (C,) float)``."""

    multi_label = True

    def __init__(self, extra_positive: float = 0.25, difficult: float = 0.0, **kwargs: Any):
        problems = self.check_config(
            dict(kwargs, extra_positive=extra_positive, difficult=difficult)
        )
        if problems:
            raise ValueError("; ".join(problems))
        super().__init__(**kwargs)
        self.extra_positive, self.difficult = extra_positive, difficult
        labels = np.asarray(self.targets)
        self.multi_hot = torch.from_numpy(
            multi_hot_targets(labels, self.num_classes, self.seed, extra_positive, difficult)
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, _ = super().__getitem__(index)
        return img, self.multi_hot[index]

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "dataset") -> list[str]:
        """Shapes' problems, and those of ``extra_positive``/``difficult`` (probabilities)."""
        problems = Shapes.check_config({k: v for k, v in cfg.items() if k not in _OWN}, path)
        for key in _OWN:
            value = cfg.get(key, 0.0)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= 1
            ):
                problems.append(f"{path}.{key}: expected a probability in [0, 1], got {value!r}")
        return problems
