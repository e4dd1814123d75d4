"""The atomic-commit primitives every checkpoint write and delete goes through.

A checkpoint is written into a hidden staging sibling of its target (:func:`aside` with
:data:`STAGING_PREFIX`), fsynced, then renamed into place (:func:`commit`); a delete first
renames it to a hidden trash sibling (:data:`TRASH_PREFIX`). Hidden entries are never
taken for checkpoints, so a kill at any moment leaves either the old directory or the new
one. The directory fsyncs make the renames themselves durable.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

STAGING_PREFIX, TRASH_PREFIX = ".staging-", ".trash-"


def aside(d: Path, prefix: str) -> Path:
    """A hidden sibling name for ``d`` that find_latest never considers."""
    return d.parent / f"{prefix}{d.name}-{os.getpid()}-{secrets.token_hex(4)}"


def fsync_dir(d: Path) -> None:
    """Make the entries of directory ``d`` (created, renamed, removed) durable."""
    if os.name == "nt":  # Windows cannot open a directory for fsync
        return
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(f: Path) -> None:
    """Flush the bytes of the existing file ``f`` to disk."""
    with open(f, "rb+") as fh:
        os.fsync(fh.fileno())


def write_bytes(f: Path, data: bytes, fsync: bool) -> None:
    """Write ``data`` as the file ``f``, flushed to disk with ``fsync``."""
    with open(f, "wb") as fh:
        fh.write(data)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())


def commit(staging: Path, target: Path, fsync: bool) -> None:
    """Rename the finished staging dir onto ``target``, replacing an older one."""
    trash = None
    if target.exists():  # a re-save of the same name: move the old one out of the way
        trash = aside(target, TRASH_PREFIX)
        os.rename(target, trash)
    try:
        os.rename(staging, target)
    except BaseException:
        if trash is not None:  # put the previous checkpoint back
            os.rename(trash, target)
        raise
    if fsync:
        fsync_dir(target.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
