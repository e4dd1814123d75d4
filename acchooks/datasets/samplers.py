"""RepeatAugSampler: repeated augmentation (DeiT, timm), resumable on any process count.

timm/DeiT semantics: each epoch takes a permutation of the dataset, repeats every index
``num_repeats`` times in a row, and deals the result round-robin to the processes, so
the copies of one image go to different processes (when there are at least
``num_repeats``) in the same step; each process's epoch is cut to
``len(dataset) // selected_round * selected_round / selected_ratio`` samples
(``selected_ratio`` 0: the number of processes), so an epoch still covers about
``len(dataset)`` samples in all.

What acchooks adds:

* **The order is a pure function of (seed, epoch).** The repeated sequence ``G`` does
  not depend on the number of processes or the batch size; process ``p`` takes
  ``G[p::R]``, and after ``k`` optimizer steps the processes together have taken exactly
  ``G[:k * global_batch]``. A resume on another process count (the same global batch)
  therefore continues ``G`` where it stopped: no sample repeated, none skipped. Accelerate
  shards a loader by batches, so the sampler yields ``G`` already arranged in the order
  Accelerate deals it (process ``p``'s ``b`` samples of a step after process ``p - 1``'s).
* **Each copy is augmented anew.** It yields ``copy * len(dataset) + index``; the train
  dataset (:class:`~.seeded.SeededDataset`) loads ``index`` and seeds the augmentation with
  the whole number, so the copies of an image get different random augmentations (with
  one seed per index they would be identical, and repeating them pointless).

An epoch is a whole number of global steps (the remainder is dropped, as timm's train
loader drops its last incomplete batch). ``sampler=dict(type='RepeatAugSampler',
num_repeats=3)`` (MMClassification's key and arguments) turns it on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import Sampler

from ..config.checks import boolean, integer, non_negative_int, number_at_least, one_of, optional
from ..config.optionset import Option, OptionSet
from ..errors import ConfigError
from .seeded import sample_seed

SAMPLER = OptionSet(  # timm's / MMClassification's RepeatAugSampler arguments
    "sampler",
    [
        Option("type", one_of(("RepeatAugSampler",)), "RepeatAugSampler", "the sampler"),
        Option("num_repeats", number_at_least(1), 3, "copies of each sample (may be a float)"),
        Option("selected_round", non_negative_int, 256, "epoch length rounded down to this"),
        Option("selected_ratio", number_at_least(0), 0, "divide the epoch by; 0: processes"),
        Option("shuffle", boolean, True, "a new permutation each epoch"),
        Option("seed", optional(integer), None, "None: the run's seed"),
    ],
    "``sampler=dict(type='RepeatAugSampler', num_repeats=3)``: repeated augmentation.",
)


class RepeatAugSampler(Sampler[int]):
    """Repeated augmentation over ``dataset_len`` samples for ``num_processes`` processes
    of ``batch_size`` samples each; yields ``copy * dataset_len + index`` (module doc)."""

    def __init__(
        self,
        dataset_len: int,
        *,
        num_repeats: float = 3,
        selected_round: int = 256,
        selected_ratio: float = 0,
        shuffle: bool = True,
        seed: int = 0,
        num_processes: int = 1,
        batch_size: int = 1,
    ) -> None:
        self.n, self.num_repeats, self.shuffle = int(dataset_len), num_repeats, shuffle
        self.seed, self.world, self.batch = int(seed), int(num_processes), int(batch_size)
        self.epoch = 0
        rounded = self.n // selected_round * selected_round if selected_round else self.n
        ratio = selected_ratio or self.world
        per_process = math.floor(rounded / ratio) if selected_round else math.ceil(rounded / ratio)
        per_process = min(per_process, math.ceil(math.ceil(self.n * num_repeats) / self.world))
        self.steps = per_process // self.batch  # whole global steps only
        if self.steps == 0:
            raise ConfigError(
                f"sampler (RepeatAugSampler): an epoch of {self.n} samples gives each of "
                f"{self.world} process(es) {per_process} samples (len // selected_round "
                f"{selected_round} * selected_round / selected_ratio "
                f"{selected_ratio or 'num_processes'}), less than one batch of "
                f"{self.batch}; lower selected_round (0: no rounding) or use more data"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps * self.world * self.batch

    def sequence(self, epoch: int) -> torch.Tensor:
        """``G``: the epoch's repeated sequence of ``copy * n + index``, independent of
        the process count and the batch size."""
        g = torch.Generator()
        g.manual_seed(sample_seed(self.seed, epoch, 0x52415321))
        n, r = self.n, self.num_repeats
        perm = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        if float(r).is_integer():
            seq = perm.repeat_interleave(int(r))
            copy = torch.arange(int(r)).repeat(n)
        else:  # timm's resampling for a fractional ratio: position i shows perm[i // r]
            which = (torch.arange(math.ceil(r * n), dtype=torch.float64) / r).long()
            seq = perm[which]
            copy = torch.arange(len(which)) - torch.searchsorted(which, which)
        return copy * n + seq

    def __iter__(self) -> Iterator[int]:
        seq = self.sequence(self.epoch)
        total = len(self)
        if len(seq) < total:  # timm pads by wrapping around
            seq = seq.repeat(math.ceil(total / len(seq)))
        seq = seq[:total].view(self.steps, self.batch, self.world)  # [step, slot, process]
        return iter(seq.permute(0, 2, 1).reshape(-1).tolist())  # Accelerate's dealing order


def build_sampler(
    sampler_cfg: Mapping[str, Any], dataset: Any, seed: int, accelerator: Any, batch_size: int
) -> RepeatAugSampler:
    """The sampler of ``sampler=dict(...)`` for the train ``dataset`` (a SeededDataset,
    told how many copies to expect), one process's ``batch_size`` and the run's seed."""
    opts = SAMPLER.resolve(sampler_cfg)
    SAMPLER.check(sampler_cfg)
    from ..optim.lr_scaling import per_process_batch

    world = getattr(accelerator, "num_processes", 1)
    batch_size = per_process_batch(batch_size, world, getattr(accelerator, "split_batches", False))
    n = len(dataset)
    if hasattr(dataset, "copies"):
        dataset.copies = math.ceil(opts["num_repeats"])
    return RepeatAugSampler(
        n,
        num_repeats=opts["num_repeats"],
        selected_round=opts["selected_round"],
        selected_ratio=opts["selected_ratio"],
        shuffle=opts["shuffle"],
        seed=seed if opts["seed"] is None else opts["seed"],
        num_processes=world,
        batch_size=batch_size,
    )


def check_sampler(cfg: Mapping[str, Any]) -> list[str]:
    """The problems of the top-level ``sampler`` (MMClassification's key)."""
    sampler = cfg.get("sampler")
    if not isinstance(sampler, Mapping):
        return []  # None, or the top-level type check reports it
    return SAMPLER.problems(sampler)
