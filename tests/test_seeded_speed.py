"""SeededDataset: the augmentation stays a pure function of (seed, epoch, index) while the
per-sample cost drops (RNGs restored once per batch in the main process, never in
workers; NumPy seeded only once a sample draws from it)."""

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from acchooks.datasets.seeded import SeededDataset, sample_seed


class Draws(Dataset):
    """Draws from Python's and torch's RNGs; from NumPy's (a Gaussian) for some indices."""

    def __len__(self):
        return 40

    def __getitem__(self, i):
        v = [random.random(), float(torch.rand(()))]
        if i % 7 == 3:
            v.append(float(np.random.normal()))
        return v


def reference(seed, epoch, n):
    """Each sample with all three global RNGs seeded from (seed, epoch, index)."""
    out, ds = [], Draws()
    for i in range(n):
        s = sample_seed(seed, epoch, i)
        random.seed(s)
        np.random.seed(s & 0xFFFFFFFF)
        torch.default_generator.manual_seed(s)
        out.append(ds[i])
    return out


def rng_states():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def assert_same_states(a, b):
    assert a[0] == b[0]
    assert all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
        for x, y in zip(a[1], b[1], strict=True)
    )
    assert torch.equal(a[2], b[2])


def test_samples_are_a_function_of_seed_epoch_index_in_every_path():
    expected = {e: reference(3, e, 40) for e in (0, 1)}
    for path in ("getitem", "batch", "workers"):
        ds = SeededDataset(Draws(), 3)
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            if path == "getitem":
                got = [ds[i] for i in range(40)]
            elif path == "batch":
                got = ds.__getitems__(list(range(40)))
            else:
                loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=list)
                got = [x for b in loader for x in b]
            assert got == expected[epoch], (path, epoch)
    assert ds.seeds_numpy is False  # the workers detected NumPy, not the main process


def test_main_process_rngs_untouched_also_when_numpy_is_detected_or_gauss_cached():
    ds = SeededDataset(Draws(), 0)
    for cached_gauss in (False, True):
        random.seed(1)
        np.random.seed(1)
        torch.manual_seed(1)
        if cached_gauss:
            np.random.normal()  # leaves a cached Gaussian that a sample could read
        before = rng_states()
        got = ds.__getitems__(list(range(40)))
        assert_same_states(before, rng_states())
        assert got == reference(0, 0, 40)
    assert ds.seeds_numpy is True


class Index(Dataset):
    def __len__(self):
        return 10**6

    def __getitem__(self, i):
        return i
