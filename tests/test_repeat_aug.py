"""Repeated augmentation: timm/DeiT's RepeatAugSampler, order a pure function of (seed,
epoch), distinct copies per process, and no sample repeated or skipped across a change
of process count. Accelerate deals a loader's batches round-robin to the processes;
``dealt`` does the same to the sampler's output."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import torch
from timm.data.distributed_sampler import RepeatAugSampler as TimmRepeatAugSampler

from acchooks.datasets.samplers import RepeatAugSampler
from acchooks.errors import ConfigError
from acchooks.testing import run_config, same_weights, tiny_config, train_losses


def dealt(sampler: RepeatAugSampler) -> list[list[int]]:
    """Each process's stream, as Accelerate's batch sharding gives it."""
    order, b, world = list(sampler), sampler.batch, sampler.world
    batches = [order[i : i + b] for i in range(0, len(order), b)]
    return [sum(batches[p::world], []) for p in range(world)]


def test_order_is_a_pure_function_of_seed_and_epoch():
    a = RepeatAugSampler(100, seed=3, selected_round=0, batch_size=4)
    b = RepeatAugSampler(100, seed=3, selected_round=0, batch_size=4)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


@pytest.mark.parametrize("world", [3, 4])
def test_each_process_sees_distinct_augmented_copies(world):
    n = 120
    s = RepeatAugSampler(n, num_repeats=3, selected_round=0, num_processes=world, batch_size=5)
    streams = dealt(s)
    owner: dict[int, set[int]] = {}
    for p, stream in enumerate(streams):
        for v in stream:
            owner.setdefault(v % n, set()).add(p)
    every = [v for stream in streams for v in stream]
    assert len(every) == len(set(every))  # each (copy, index) once: distinct augmentations
    full = [i for i, procs in owner.items() if Counter(v % n for v in every)[i] == 3]
    assert full and all(len(owner[i]) == 3 for i in full)  # the 3 copies on 3 processes


def test_same_layout_as_timm():
    """Process p takes the p-th of every R samples of the repeated permutation, cut to
    timm's per-process length (here a whole number of batches)."""
    n, world, b = 64, 2, 8
    ours = RepeatAugSampler(n, num_processes=world, batch_size=b, selected_round=16)
    timm = TimmRepeatAugSampler(list(range(n)), num_replicas=world, rank=0, selected_round=16)
    assert len(dealt(ours)[0]) == len(timm)
    seq = ours.sequence(0)
    for p, stream in enumerate(dealt(ours)):
        assert stream == seq[p::world][: len(timm)].tolist()
    assert [v % n for v in seq[::3].tolist()] == [v % n for v in seq[1::3].tolist()]


def test_a_change_of_process_count_neither_repeats_nor_skips():
    n, steps_done = 96, 2
    one = RepeatAugSampler(n, num_repeats=3, selected_round=0, batch_size=16)
    two = RepeatAugSampler(n, num_repeats=3, selected_round=0, num_processes=2, batch_size=8)
    assert len(one) == len(two)
    seen = list(one)[: steps_done * 16]  # 1 process x 16, stopped after 2 steps
    rest = [v for p in dealt(two) for v in p[steps_done * 8 :]]  # resumed on 2 x 8
    assert sorted(seen + rest) == sorted(one)
    assert not set(seen) & set(rest)


def test_fractional_repeats_and_too_small_epochs():
    s = RepeatAugSampler(10, num_repeats=2.5, selected_round=0, batch_size=1)
    seq = s.sequence(0).tolist()
    assert len(seq) == 25 and len(set(seq)) == 25
    assert Counter(v % 10 for v in seq).most_common(1)[0][1] == 3
    with pytest.raises(ConfigError, match="lower selected_round"):
        RepeatAugSampler(64, selected_round=256, batch_size=8)


# ---------------------------------------------------------------- in a run
SAMPLER = dict(type="RepeatAugSampler", num_repeats=3, selected_round=0)


def test_copies_are_augmented_differently(tmp_path):
    runner = run_config(tiny_config(tmp_path, sampler=SAMPLER, runner=dict(max_epochs=1)))
    loader = runner.data_loaders["train"]
    ds = loader.dataset
    assert ds.copies == 3 and len(loader) == 4  # 32 samples an epoch, batches of 8
    n = len(ds)
    copies = [[ds[i + c * n][0] for c in range(3)] for i in range(n)]
    assert all(torch.equal(ds[i][0], copies[i][0]) for i in range(n))
    assert any(not torch.equal(a, b) for a, b, _ in copies)  # hflip drawn per copy


RESUMABLE = dict(
    sampler=SAMPLER,
    data=dict(workers_per_gpu=2, train=dict(num_samples=40)),  # 5 iterations per epoch
    checkpoint_config=dict(interval=3, by_epoch=False),
    runner=dict(max_epochs=2),
)


def test_resume_mid_epoch_is_bit_exact(tmp_path):
    run_config(tiny_config(tmp_path / "a", **RESUMABLE))
    shutil.copytree(tmp_path / "a" / "iter_6", tmp_path / "b" / "iter_6")
    run_config(tiny_config(tmp_path / "b", **RESUMABLE, resume_from="auto"))
    assert train_losses(tmp_path / "b") == train_losses(tmp_path / "a")[6:]
    assert same_weights(tmp_path / "a" / "iter_9", tmp_path / "b" / "iter_9")


def test_mmcls_sampler_key_is_used_and_checked(tmp_path):
    from acchooks.config.schema import check_config

    cfg = tiny_config(tmp_path, sampler=dict(type="RepeatAugSampler"))
    problems, warnings = check_config(cfg)
    assert not problems and not any("sampler" in w for w in warnings)
    problems, _ = check_config(
        tiny_config(tmp_path, sampler=dict(type="RepeatAugSampler", num_repeat=3))
    )
    assert any(
        "sampler: unexpected key 'num_repeat'; did you mean 'num_repeats'?" in p for p in problems
    )
    problems, _ = check_config(tiny_config(tmp_path, sampler=dict(type="DistributedSampler")))
    assert any(p.startswith("sampler.type: expected one of 'RepeatAugSampler'") for p in problems)
