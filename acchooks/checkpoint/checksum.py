"""The per-file digests a manifest records and a reader verifies.

A fast non-cryptographic hash is enough: it is there to catch accidental corruption (same
size, different bytes), not tampering (whoever can change a file can rewrite the manifest).
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

# The digest new manifests record per file; readers verify any of CHECKSUMS.
CHECKSUM = "xxh3_128"
CHECKSUMS: dict[str, Callable[[], Any]] = {
    "xxh3_128": xxhash.xxh3_128,
    "sha256": hashlib.sha256,
}  # earlier versions


def file_digest(f: Path, algo: str = CHECKSUM) -> str:
    """Hex digest of a file's bytes; ``algo`` is a key of :data:`CHECKSUMS`."""
    h = CHECKSUMS[algo]()
    with open(f, "rb", buffering=0) as fh:
        try:  # hash the page cache in place (~10% faster load than read() into a buffer);
            # safetensors' load_file maps the file too, so this risks nothing new
            m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # an empty file, or a file system without mmap
            buf = memoryview(bytearray(1 << 22))
            while n := fh.readinto(buf):
                h.update(buf[:n])
        else:
            with m:
                h.update(m)
    return h.hexdigest()
