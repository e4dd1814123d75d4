"""SeededDataset: random augmentation as a pure function of (seed, epoch, index).

Before each sample, Python's ``random``, torch's CPU generator and (when the transforms
use it) NumPy's global RNG are seeded from ``(seed, epoch, index)``. A sample therefore
gets the same augmentation whatever the number of workers, which worker loads it, the
number of processes, or whether the run was resumed in the middle of the epoch. The
epoch lives in shared memory so that persistent DataLoader workers see ``set_epoch`` from
the main process.

What it costs, and why (``benchmarks/seeded_dataset.py``):

* **Inside DataLoader workers** the global RNGs are the worker's own: they are seeded
  and never restored.
* **In the main process** (``workers_per_gpu=0``) the RNGs are the run's (dropout, the
  checkpointed RNG state), so they are saved and restored, once per *batch*: the
  DataLoader fetches a batch with one ``__getitems__`` call. ``getstate``/``get_state``
  cost 10-40 µs each, ``random.seed(int)`` ~4 µs, ``torch`` ~1 µs.
* **NumPy is seeded only once a sample uses it.** Its global MT19937 position is read
  (through the bit generator's ctypes address, ~0.1 µs) before and after each sample; if
  a sample moved it, the sample is loaded again with NumPy seeded, and NumPy is seeded for
  every sample from then on. The result is the same as seeding it always. Its cached
  Gaussian (``has_gauss``, which a draw need not move the position to read) is checked
  once per batch.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

_MASK = (1 << 63) - 1
_MT_WORDS = 624  # MT19937: uint32 key[624]; int pos


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed from the triple (splitmix64 over the packed values)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) & _MASK


_numpy_mark_cache: list[Any] = [None, None]  # [bit generator, mark function]


def numpy_mark() -> Callable[[], tuple[int, int]] | None:
    """A function returning NumPy's global MT19937 (position, first word): any draw moves
    one of them. None when the global bit generator is not an MT19937."""
    bg = np.random.get_bit_generator()
    if _numpy_mark_cache[0] is bg:
        return _numpy_mark_cache[1]
    mark = None
    if type(bg) is np.random.MT19937:
        address = bg.ctypes.state_address
        pos = ctypes.c_int.from_address(address + 4 * _MT_WORDS)
        first = ctypes.c_uint32.from_address(address)
        if (pos.value, first.value) == (bg.state["state"]["pos"], bg.state["state"]["key"][0]):
            mark = lambda: (pos.value, first.value)  # noqa: E731
    _numpy_mark_cache[:] = [bg, mark]
    return mark


class SeededDataset(Dataset):
    """A train dataset whose random augmentation is a function of (seed, epoch, index), so a
    resumed run augments each sample exactly as the interrupted one would have."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        # RepeatAugSampler yields copy * len + index: each copy is augmented anew
        self.copies = 1
        self.seeds_numpy = False  # becomes True (per process) once a sample draws from NumPy

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """The samples of ``indices`` (the DataLoader fetches a batch with one call)."""
        in_worker = get_worker_info() is not None
        gen = torch.default_generator  # the CPU generator only (torch.manual_seed: CUDA too)
        mark = None if self.seeds_numpy else numpy_mark()
        np_saved = np.random.get_state() if mark is None or not in_worker else None
        if mark is not None and (np_saved or np.random.get_state())[3]:
            mark = None  # a cached Gaussian, which a sample reads without moving the state
        if not in_worker:
            saved = random.getstate(), gen.get_state()
            start = mark() if mark is not None else None
        try:
            return self._load(indices, mark, gen)
        finally:
            if not in_worker:
                random.setstate(saved[0])
                gen.set_state(saved[1])
                if mark is None or self.seeds_numpy or mark() != start:
                    np.random.set_state(np_saved)

    def _load(self, indices: Sequence[int], mark: Any, gen: torch.Generator) -> list[Any]:
        epoch, n, dataset = int(self._epoch[0]), len(self.dataset), self.dataset
        wrap = self.copies > 1
        out = []
        for index in indices:
            s = sample_seed(self.seed, epoch, int(index))
            while True:
                random.seed(s)
                gen.manual_seed(s)
                if mark is None:
                    np.random.seed(s & 0xFFFFFFFF)
                    before = None
                else:
                    before = mark()
                item = dataset[index % n if wrap else index]
                if before is None or mark() == before:
                    break
                mark, self.seeds_numpy = None, True  # it drew from NumPy: load it again, seeded
            out.append(item)
        return out

    def __getattr__(self, name: str) -> Any:
        # classes, targets, ... of the wrapped dataset
        if name in ("dataset", "seed", "_epoch", "copies", "seeds_numpy"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __repr__(self) -> str:
        return f"SeededDataset({self.dataset!r}, seed={self.seed})"
