"""``Shapes``: a generated, learnable image dataset for demos and tests.

Every image is a noisy background of a random colour with one filled shape of another
random colour, size and position; the label is the kind of shape. All kinds are
symmetric under a horizontal flip, so flipping is a label-preserving augmentation.
Images are generated up front with numpy, deterministically from ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config.checks import (
    Check,
    boolean,
    int_at_least,
    int_in,
    integer,
    is_number,
    number_at_least,
    number_in,
    optional,
    positive_int,
)
from ..config.optionset import Option, OptionSet
from ..registry import DATASETS

# Each kind is a mask on coordinates (u, v) scaled so the shape fits in [-1, 1]^2.
_KINDS = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.85,
    "triangle": lambda u, v: (np.abs(u) <= (v + 1.0) / 2.0) & (v <= 1.0),  # apex up
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
    ),
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.4),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1.0,
    "hbar": lambda u, v: (np.abs(u) <= 1.0) & (np.abs(v) <= 0.3),
    "vbar": lambda u, v: (np.abs(u) <= 0.3) & (np.abs(v) <= 1.0),
}
SHAPE_KINDS: tuple[str, ...] = tuple(_KINDS)
MIN_IMG_SIZE = 8

_RGB = Check(
    "3 numbers (one per RGB channel)",
    lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(map(is_number, v)),
)
OPTIONS = OptionSet(  # Shapes' arguments, in the order the problems are reported
    "Shapes",
    [
        Option(
            "num_classes",
            int_in(1, len(SHAPE_KINDS)).noted(f"the kinds: {', '.join(SHAPE_KINDS)}"),
            4,
        ),
        Option("img_size", int_at_least(MIN_IMG_SIZE), 32),
        Option("num_samples", positive_int, 2000),
        Option("mean", _RGB, (0.5, 0.5, 0.5)),
        Option(
            "std",
            Check(
                "3 non-zero numbers (one per RGB channel)",
                lambda v: _RGB.ok(v) and all(x != 0 for x in v),
            ),
            (0.5, 0.5, 0.5),
        ),
        Option(
            "hflip",
            optional(number_in(0, 1).named("a probability in [0, 1]")),
            None,
            "None: 0.5 when is_training, else 0",
        ),
        Option("noise", number_at_least(0), 0.1),
        Option("seed", integer, 0),
        Option("is_training", boolean, False),
    ],
)


def generate_shapes(
    num_samples: int, img_size: int, num_classes: int, seed: int, noise: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W, 3)`` uint8 and labels ``(N,)`` int64, deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    n, s = num_samples, img_size
    # Exactly balanced classes, in random order.
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    half = rng.uniform(0.22, 0.42, n) * s  # half-size of the shape in pixels
    cx = rng.uniform(half - 0.5, s - 0.5 - half)
    cy = rng.uniform(half - 0.5, s - 0.5 - half)
    bg = rng.integers(0, 256, (n, 3))
    # A per-channel offset in [64, 192] (mod 256) keeps the shape visible on any background.
    fg = (bg + rng.integers(64, 193, (n, 3))) % 256
    grid = np.arange(s, dtype=np.float32)
    u = (grid[None, None, :] - cx[:, None, None].astype(np.float32)) / half[:, None, None]
    v = (grid[None, :, None] - cy[:, None, None].astype(np.float32)) / half[:, None, None]
    mask = np.zeros((n, s, s), dtype=bool)
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        mask[idx] = _KINDS[SHAPE_KINDS[k]](u[idx], v[idx])
    img = np.where(mask[..., None], fg[:, None, None, :], bg[:, None, None, :]).astype(np.float32)
    if noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * (noise * 255.0)
    return np.clip(img, 0, 255).astype(np.uint8), labels


@DATASETS.register_module()
class Shapes(Dataset):
    """Generated shapes; ``__getitem__`` gives ``(CxHxW float tensor, int label)``.

    ``hflip`` is the flip probability; ``None`` means 0.5 when ``is_training`` else 0.
    The flip draws from the global torch RNG so the trainer's seed controls it.
    """

    def __init__(
        self,
        num_samples: int = 2000,
        img_size: int = 32,
        num_classes: int = 4,
        seed: int = 0,
        is_training: bool = False,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        noise: float = 0.1,
        hflip: float | None = None,
    ):
        args = dict(num_samples=num_samples, img_size=img_size, num_classes=num_classes)
        args.update(seed=seed, is_training=is_training, mean=mean, std=std)
        OPTIONS.check(dict(args, noise=noise, hflip=hflip), "Shapes")
        self.num_samples, self.img_size, self.num_classes = num_samples, img_size, num_classes
        self.seed, self.is_training, self.noise = seed, is_training, noise
        self.hflip = (0.5 if is_training else 0.0) if hflip is None else float(hflip)
        self.classes: list[str] = list(SHAPE_KINDS[:num_classes])
        self.images, labels = generate_shapes(num_samples, img_size, num_classes, seed, noise)
        self.targets: list[int] = labels.tolist()
        # Folded into one affine map: x/255 -> (x/255 - mean)/std.
        std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) / std_t

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = torch.from_numpy(self.images[index]).permute(2, 0, 1).float()
        img = img * self._scale + self._shift
        if self.hflip > 0 and torch.rand(1).item() < self.hflip:
            img = img.flip(-1)
        return img, self.targets[index]

    def __repr__(self) -> str:
        return (
            f"Shapes(num_samples={self.num_samples}, img_size={self.img_size}, "
            f"num_classes={self.num_classes}, seed={self.seed}, "
            f"is_training={self.is_training}, hflip={self.hflip})"
        )

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "dataset") -> list[str]:
        """Problems in a Shapes config (without generating anything); each starts with ``path``."""
        return OPTIONS.problems(cfg, path)
