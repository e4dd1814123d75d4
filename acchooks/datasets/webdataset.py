"""WebDataset tar shards as a train dataset: ``TimmDataset(name='wds/<anything>', root=...)``.

``root`` is a brace pattern (``data/train-{000000..000009}.tar``), a folder (all its
``*.tar``, sorted) or one tar. A sample is the tar members sharing a key (the path up to
the first dot of the file name): an image (``.jpg``/``.jpeg``/``.png``/``.webp``) and a
label (``.cls``, ``.cls.txt``, ``.label`` as ASCII text, or ``.json`` with a ``label``).

Each tar's headers are read once at construction (no image is decoded): per sample its
image member's (offset, size) and its label. The epoch's sample order is then a pure
function of (seed, epoch) (:func:`epoch_order`): shards permuted, their samples
concatenated, shuffled within consecutive windows of ``shuffle_buffer``. The epoch is cut
to a multiple of the global batch; global batch ``g`` is rank ``g % world``'s batch
``g // world`` (as Accelerate shards a map-style loader's batches), and DataLoader worker
``w`` of ``W`` yields the rank's batches ``w, w + W, ...`` (the loader takes batch ``k``
from worker ``k % W``), so the loader's order is the same for any number of workers.
Augmentation is seeded per sample from (seed, epoch, position) by :class:`SeededDataset`.
:meth:`WdsShards.skip_batches` starts the next pass at a batch without reading the
batches before it: the runner's exact mid-epoch resume.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..errors import ConfigError, DataError
from .seeded import SeededDataset
from .wds_index import index_shard, shard_paths

_OWN = {"num_samples", "shuffle_buffer"}
_MAX_OPEN = 8  # open shard files per process
_log = logging.getLogger("acchooks")


def epoch_order(
    sizes: Sequence[int], seed: int, epoch: int, length: int, shuffle_buffer: int
) -> np.ndarray:
    """The epoch's first ``length`` sample ids (global, shard by shard): a pure function of
    (seed, epoch). Each pass over the data permutes the shards and shuffles windows of
    ``shuffle_buffer`` consecutive samples; passes repeat while ``length`` needs more."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    total, parts, p = int(sum(sizes)), [], 0
    while p * total < length:
        rng = np.random.default_rng([seed, epoch, p])
        seq = np.concatenate([starts[s] + np.arange(sizes[s]) for s in rng.permutation(len(sizes))])
        if shuffle_buffer > 1:
            for i in range(0, total, shuffle_buffer):
                rng.shuffle(seq[i : i + shuffle_buffer])
        parts.append(seq)
        p += 1
    return np.concatenate(parts)[:length]


class _Positions(Dataset):
    """The epoch's samples by position, map-style, for :class:`SeededDataset`."""

    def __init__(self, shards: WdsShards) -> None:
        self.shards = shards

    def __len__(self) -> int:
        return self.shards.epoch_samples

    def __getitem__(self, position: int) -> tuple[Any, int]:
        return self.shards.load(position)


class WdsShards(IterableDataset):
    """WebDataset tar shards streamed in a (seed, epoch)-determined order, split without
    overlap across processes and DataLoader workers, resumable at any batch; see the
    module doc. ``len()``: this process's samples per epoch (see :meth:`configure`)."""

    def __init__(
        self,
        name: str,
        root: str,
        split: str = "train",
        num_samples: int | None = None,
        shuffle_buffer: int = 1000,
        transform: Any = None,
    ) -> None:
        paths, problems = shard_paths(root)
        if problems:
            raise ConfigError([f"{name}: {p}" for p in problems])
        self.name, self.split, self.paths = name, split, paths
        indexed = [index_shard(p) for p in paths]
        self.sizes = [len(keys) for keys, _ in indexed]
        self.keys = [f"{i}/{k}" for i, (keys, _) in enumerate(indexed) for k in keys]
        table = np.concatenate([rows for _, rows in indexed])
        self.shard_of = np.repeat(np.arange(len(paths)), self.sizes)
        self.offsets, self.lengths, self.labels = table[:, 0], table[:, 1], table[:, 2]
        self.num_samples = int(num_samples) if num_samples else len(self.keys)
        self.shuffle_buffer = int(shuffle_buffer)
        self.transform = transform
        # [epoch, batches to skip in it]: shared with (persistent) DataLoader workers
        self._state = torch.zeros(2, dtype=torch.int64).share_memory_()
        self._seeded = SeededDataset(_Positions(self), seed=0)
        self._order: tuple[int, np.ndarray] | None = None
        self._files: dict[str, Any] = {}
        self._files_pid = os.getpid()
        self.configure(1, 0, 1, 0, report=False)

    # ------------------------------------------------------------ the split
    def configure(
        self, batch_size: int, rank: int, world_size: int, seed: int, report: bool = True
    ) -> None:
        """Set the batch size, this process's rank, the number of processes and the seed;
        the epoch is cut to a multiple of ``batch_size * world_size`` samples."""
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        self._seeded.seed, self._order = int(seed), None
        global_batch = self.batch_size * self.world_size
        self.batches = self.num_samples // global_batch  # per process and epoch
        if self.batches == 0:
            raise ConfigError(
                f"{self.name}: {self.num_samples} samples per epoch, fewer than one global "
                f"batch ({self.batch_size} per process x {self.world_size} processes)"
            )
        dropped = self.num_samples - self.epoch_samples
        if report and dropped and rank == 0:
            _log.info(
                f"{self.name}: {self.epoch_samples} of {self.num_samples} samples per epoch "
                f"({self.batches} batches of {global_batch}); {dropped} left out "
                "(the order is reshuffled each epoch: usually others)"
            )

    @property
    def epoch_samples(self) -> int:
        """Samples of one epoch, all processes together."""
        return self.batches * self.batch_size * self.world_size

    def __len__(self) -> int:
        return self.batches * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass; a new epoch also forgets :meth:`skip_batches`."""
        if int(self._state[0]) != epoch:
            self._state[1] = 0
        self._state[0] = epoch
        self._seeded.set_epoch(epoch)

    def skip_batches(self, done: int) -> None:
        """Passes over the current epoch start at this process's batch ``done`` (none of
        the batches before it is read): a resumed run continues where it stopped."""
        self._state[1] = max(0, min(int(done), self.batches))

    def epoch_ids(self, epoch: int) -> np.ndarray:
        """The epoch's sample ids in order (all processes' batches interleaved)."""
        if self._order is None or self._order[0] != epoch:
            order = epoch_order(
                self.sizes, self._seeded.seed, epoch, self.epoch_samples, self.shuffle_buffer
            )
            self._order = (epoch, order)
        return self._order[1]

    def rank_batches(self) -> range:
        """This process's batches of the current pass (after :meth:`skip_batches`)."""
        return range(int(self._state[1]), self.batches)

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        bs, world, rank = self.batch_size, self.world_size, self.rank
        for b in self.rank_batches()[worker::workers]:
            g = b * world + rank  # the global batch
            yield from self._seeded.__getitems__(range(g * bs, (g + 1) * bs))

    # ------------------------------------------------------------ samples
    def load(self, position: int) -> tuple[Any, int]:
        """The sample at ``position`` of the current epoch: (transformed image, label)."""
        i = int(self.epoch_ids(int(self._state[0]))[position])
        f, offset, size = self._file(self.paths[self.shard_of[i]]), self.offsets[i], self.lengths[i]
        if hasattr(os, "pread"):  # no shared file position (a forked worker inherits the file)
            data = os.pread(f.fileno(), int(size), int(offset))
        else:
            f.seek(int(offset))
            data = f.read(int(size))
        try:
            image = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception as e:  # noqa: BLE001 - whatever PIL raises, the sample is at fault
            raise DataError(
                f"{self.name}: cannot read sample {i} ('{self.keys[i]}', {size} bytes at "
                f"offset {offset}) of {self.paths[self.shard_of[i]]} ({type(e).__name__}: "
                f"{e}); rewrite that shard without the sample or with a readable image"
            ) from None
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i])

    def _file(self, path: str) -> Any:
        if self._files_pid != os.getpid():  # a forked worker: its own files
            self._files, self._files_pid = {}, os.getpid()
        f = self._files.get(path)
        if f is None:
            if len(self._files) >= _MAX_OPEN:
                self._files.pop(next(iter(self._files))).close()
            f = self._files[path] = open(path, "rb")
        return f

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}  # each worker opens its own
        return state

    def __repr__(self) -> str:
        return (
            f"WdsShards({self.name!r}, {len(self.paths)} shards, {len(self.keys)} samples, "
            f"{self.epoch_samples} per epoch)"
        )

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "dataset") -> list[str]:
        """Problems found without reading the shards: the root and the own arguments."""
        problems = [f"{path}.{p}" for p in shard_paths(cfg.get("root"))[1]]
        n, buf = cfg.get("num_samples"), cfg.get("shuffle_buffer", 1000)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            problems.append(f"{path}.num_samples: expected a positive int or None, found {n!r}")
        if not isinstance(buf, int) or isinstance(buf, bool) or buf < 0:
            problems.append(f"{path}.shuffle_buffer: expected an int >= 0, found {buf!r}")
        for k in ("class_map", "dataset_kwargs"):
            if cfg.get(k):
                problems.append(f"{path}.{k}: not supported for 'wds/' shards")
        return problems


def streaming_loader(
    dataset: WdsShards,
    opts: Mapping[str, Any],
    seed: int,
    split: str,
    train: bool,
    accelerator: Any = None,
    sampler: Any = None,
) -> Any:
    """The train loader of a :class:`WdsShards`: Accelerate's ``DataLoaderShard`` built
    directly (batches moved to the device, the end of the epoch known to gradient
    accumulation); it must not go through ``accelerator.prepare``, which would dispatch
    or re-shard an iterable dataset. ``sampler``: the config's (refused)."""
    from accelerate.data_loader import DataLoaderShard

    where = f"data.{split}: '{dataset.name}': WebDataset shards"
    if not train:
        raise ConfigError(
            f"{where} are supported for data.train only; give data.{split} as a folder "
            "(TimmDataset with name='') or another map-style dataset"
        )
    if sampler is not None or getattr(accelerator, "split_batches", False):
        raise ConfigError(
            f"{where} split themselves over processes and workers: no `sampler` and no "
            "accelerator.split_batches with them"
        )
    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    dataset.configure(opts["samples_per_gpu"], rank, world, seed)
    generator = torch.Generator()  # the workers' base seed: not drawn from the run's RNG
    generator.manual_seed(seed)
    return DataLoaderShard(
        dataset,
        generator=generator,
        device=accelerator.device if accelerator is not None else None,
        batch_size=opts["samples_per_gpu"],
        num_workers=opts["workers_per_gpu"],
        pin_memory=opts["pin_memory"],
        persistent_workers=opts["persistent_workers"],
    )
