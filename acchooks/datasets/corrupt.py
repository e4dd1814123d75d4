"""Reading a sample's image, and what happens when the file is corrupt.

By default a file that cannot be decoded is a :class:`~acchooks.errors.DataError` naming
the dataset, the sample's index and the file. With ``skip_corrupt=True`` the sample is
replaced by the next readable one (index + 1, + 2, ... wrapping around), so the batch
keeps its size and the replacement is the same in every run, worker layout and resume;
each skip is logged as a warning with the running count, which is also
``dataset.corrupt_skipped`` (shared by the DataLoader workers: each loading process
decodes a bad file once, counts it, and remembers it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from ..errors import DataError


class CorruptSkipper:
    """Loads sample images through ``read(index)``; raises, or skips and counts, the
    corrupt ones (see the module docstring)."""

    def __init__(self, name: str, where: str, enabled: bool):
        self.name, self.where, self.enabled = name, where, bool(enabled)
        self._count = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._bad: set[int] = set()  # per process: known-bad indices are not decoded again

    @property
    def count(self) -> int:
        """Corrupt files found so far, by every loading process (module docstring)."""
        return int(self._count[0])

    def _error(self, index: int, path: str, e: Exception) -> DataError:
        return DataError(
            f"{self.name}: cannot read sample {index} of {self.where}: {path} "
            f"({type(e).__name__}: {e}); replace or delete that file"
            + ("" if self.enabled else ", or set skip_corrupt=True to skip such samples")
        )

    def load(
        self, index: int, size: int, path_of: Callable[[int], str], read: Callable[[int], Any]
    ) -> tuple[Any, int]:
        """The image of sample ``index``, or of the next readable one when skipping;
        returns ``(image, index actually used)``."""
        for step in range(size):
            i = (index + step) % size
            if i in self._bad:
                continue
            try:
                return read(i), i
            except Exception as e:  # noqa: BLE001 - whatever PIL raises, the file is at fault
                if not self.enabled:
                    raise self._error(i, path_of(i), e) from None
                self._bad.add(i)
                self._count += 1
                logging.getLogger("acchooks").warning(
                    f"{self.name}: skip_corrupt: skipped sample {i} ({path_of(i)}: "
                    f"{type(e).__name__}: {e}); sample {index} uses the next readable one; "
                    f"{self.count} corrupt sample(s) skipped so far"
                )
        raise DataError(f"{self.name}: no readable image in {self.where} (all {size} corrupt)")
