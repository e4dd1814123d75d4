"""The DataLoaders of a run: ``data.<split>`` built as train.py builds it, and stopping a
loader's worker processes."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from ..registry import DATASETS
from .options import loader_options


def build_dataloader(
    data_cfg, split: str, seed: int, train: bool, sampler_cfg=None, accelerator=None, wrap=None
) -> DataLoader:
    """The DataLoader of ``data.<split>``; ``wrap`` (a callable) may wrap its dataset
    (``acchooks test`` adds each sample's index: evaluation/outputs.py)."""
    from ..datasets.samplers import build_sampler
    from ..datasets.seeded import SeededDataset

    dataset = DATASETS.build(data_cfg[split])
    if isinstance(dataset, IterableDataset):  # WebDataset shards: split and seeded by itself
        from ..datasets.webdataset import streaming_loader

        opts = loader_options(data_cfg, split, train)
        return streaming_loader(dataset, opts, seed, split, train, accelerator, sampler_cfg)
    if wrap is not None:
        dataset = wrap(dataset)
    if train:  # augmentation: a function of (seed, epoch, index); see SeededDataset
        dataset = SeededDataset(dataset, seed)
    opts = loader_options(data_cfg, split, train)
    sampler = None  # MMClassification's sampler=dict(type='RepeatAugSampler', ...)
    if sampler_cfg is not None:
        sampler = build_sampler(sampler_cfg, dataset, seed, accelerator, opts["samples_per_gpu"])
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=opts["samples_per_gpu"],
        shuffle=opts["shuffle"] and sampler is None,
        sampler=sampler,
        num_workers=opts["workers_per_gpu"],
        drop_last=opts["drop_last"],
        pin_memory=opts["pin_memory"],
        persistent_workers=opts["persistent_workers"],
        generator=generator,
    )


def shutdown_workers(loader: Any) -> Any:
    """Stop the worker processes of ``loader`` (a DataLoader, or a wrapper of one:
    Accelerate's, the dry run's) and return it; iterating it again starts new ones.
    Persistent workers otherwise outlive the run and delay the interpreter's exit."""
    inner, own = loader, getattr(loader, "__dict__", {})
    for _ in range(8):  # unwrap through the instances' own attributes, not __getattr__
        nested = own.get("base_dataloader", own.get("loader"))
        if nested is None:
            break
        inner, own = nested, getattr(nested, "__dict__", {})
    workers = own.get("_iterator")
    if workers is not None and hasattr(workers, "_shutdown_workers"):
        inner._iterator = None
        workers._shutdown_workers()
    return loader
