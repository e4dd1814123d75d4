"""Tiny WebDataset shards for tests and examples: sample ``n`` is a flat image whose red
channel is ``n``, so a batch names the samples it holds (:func:`sample_ids`)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

SIZES = (10, 7, 12, 10, 9, 12)  # 60 samples in 6 shards of different sizes
# an eval transform with mean 0, std 1 keeps the red channel at id / 255
PLAIN = dict(input_size=16, crop_pct=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a file ``name`` holding ``data`` to ``tar``."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_wds_shards(
    folder: str | Path,
    sizes: Sequence[int] = SIZES,
    label: Callable[[int], str | None] | None = None,
) -> str:
    """Shards ``folder/train-000000.tar``, ...: sample ``n`` is ``<n>.png`` (a flat image
    of red ``n``, another size in each shard) with ``<n>.cls`` = ``label(n)`` (default
    ``n % 4``; None leaves the label out). Returns the brace pattern naming them."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for s, size in enumerate(sizes):
        with tarfile.open(folder / f"train-{s:06d}.tar", "w") as tar:
            for _ in range(size):
                side = 16 + 2 * s
                pixels = np.zeros((side, side + 3, 3), np.uint8) + [n, (37 * n) % 256, 9 * s]
                buf = io.BytesIO()
                Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
                member(tar, f"{n:06d}.png", buf.getvalue())
                text = (label or (lambda i: str(i % 4)))(n)
                if text is not None:
                    member(tar, f"{n:06d}.cls", text.encode())
                n += 1
    return str(folder / f"train-{{000000..{len(sizes) - 1:06d}}}.tar")


def sample_ids(images) -> list[int]:
    """The ids of a batch of images from :func:`write_wds_shards` (PLAIN transform)."""
    return (images[:, 0, 0, 0] * 255).round().long().tolist()
