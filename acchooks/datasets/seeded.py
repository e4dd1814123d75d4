"""SeededDataset: random augmentation as a pure function of (seed, epoch, index).

Each ``__getitem__`` seeds Python's, NumPy's and torch's global RNGs from
``(seed, epoch, index)`` and restores them afterwards. A sample therefore gets the same
augmentation whatever the number of workers, which worker loads it, the number of
processes, or whether the run was resumed in the middle of the epoch. The epoch lives in
shared memory so that persistent DataLoader workers see ``set_epoch`` from the main
process.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed from the triple (splitmix64 over the packed values)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) & _MASK


class SeededDataset(Dataset):
    """A train dataset whose random augmentation is a function of (seed, epoch, index), so a


    resumed run augments each sample exactly as the interrupted one would have."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        # RepeatAugSampler yields copy * len + index: each copy is augmented anew
        self.copies = 1

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        s = sample_seed(self.seed, int(self._epoch[0]), int(index))
        gen = torch.default_generator  # the CPU generator only: torch.manual_seed would
        saved = random.getstate(), np.random.get_state(), gen.get_state()  # seed CUDA too
        random.seed(s)
        np.random.seed(s & 0xFFFFFFFF)
        gen.manual_seed(s)
        try:
            return self.dataset[index % len(self.dataset) if self.copies > 1 else index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            gen.set_state(saved[2])

    def __getattr__(self, name: str) -> Any:
        # classes, targets, ... of the wrapped dataset
        if name in ("dataset", "seed", "_epoch", "copies"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __repr__(self) -> str:
        return f"SeededDataset({self.dataset!r}, seed={self.seed})"
