"""The checkpoint directory format and its writer (the reader is :mod:`.reader`).

A checkpoint is a directory such as ``<work_dir>/epoch_3`` holding ``model.safetensors``
(loadable with plain ``safetensors.torch.load_file``), optionally ``optimizer.safetensors``
+ ``optimizer.json``, one ``<name>.safetensors`` per extra tensor group, ``state.json``,
and ``manifest.json``, written last, listing every file with its size (and xxh3_128 digest).

It becomes visible atomically: everything is written into a hidden staging directory
next to the target, fsynced, then renamed into place. A kill at any moment leaves either
the old checkpoint or the new one, never a half-written directory with a valid manifest.
Only safetensors and strict JSON are read or written: nothing here can unpickle.
The ``kill_point`` calls are test-only fault injection (see :mod:`.faults`).

Tensor files are written here, byte for byte what ``safetensors.torch.save_file`` writes
(see :func:`_safetensors_parts`), in about half its time: the file is preallocated, its
checksum is computed from the tensors' memory as it is written (no second read), and with
``fsync`` each chunk's write-back to disk starts as soon as it is written
(``sync_file_range``) while the fsync of a finished file runs in a thread as the next one
is written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import mmap
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import xxhash

from ..errors import ConfigError
from .faults import kill_point, truncate_half
from .optimizer_state import flatten_optimizer_state

FORMAT, VERSION = "acchooks-checkpoint", 1
MANIFEST, MODEL_FILE, STATE_FILE = "manifest.json", "model.safetensors", "state.json"
OPTIM_TENSORS, OPTIM_JSON = "optimizer.safetensors", "optimizer.json"
STAGING_PREFIX, TRASH_PREFIX = ".staging-", ".trash-"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_RESERVED_GROUPS = {"model", "optimizer", "state", "manifest"}
# The digest new manifests record per file; readers verify any of CHECKSUMS. A fast
# non-cryptographic hash is enough: it is there to catch accidental corruption (same size,
# different bytes), not tampering (whoever can change a file can rewrite the manifest).
CHECKSUM = "xxh3_128"
CHECKSUMS: dict[str, Callable[[], Any]] = {
    "xxh3_128": xxhash.xxh3_128,
    "sha256": hashlib.sha256,
}  # earlier versions
_ST_METADATA = {"format": "pt"}  # what safetensors.torch.save_file callers usually write
_CHUNK = 4 << 20  # bytes per write(); with fsync, each chunk's write-back starts at once


class CheckpointError(ConfigError):
    """A checkpoint that cannot be written or read; the message names the file.

    A ConfigError (so a ValueError): the CLI reports it as bad input and exits with 2."""


@dataclass
class Checkpoint:
    """Everything :func:`load_checkpoint` read from one checkpoint directory."""

    path: Path
    manifest: dict
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict | None
    tensors: dict[str, dict[str, torch.Tensor]]
    state: dict

    @property
    def meta(self) -> dict:
        """The ``meta`` given to :func:`save_checkpoint` (epoch, iter, ...)."""
        return self.manifest.get("meta", {})


# ----------------------------------------------------------------------------- JSON
def _check_json(obj: Any, label: str, path: str = "") -> None:
    """Raise CheckpointError naming the key path of the first non-strict-JSON value."""
    where = f"{label}: value at '{path or '<root>'}'"
    if obj is None or isinstance(obj, (bool, int, str)):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise CheckpointError(
                f"{where} is {obj}; strict JSON has no NaN/Infinity "
                "(hint: store None or a string instead)"
            )
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_json(v, label, f"{path}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise CheckpointError(
                    f"{where} has a non-string key {k!r} "
                    f"({type(k).__name__}); JSON keys must be str"
                )
            _check_json(v, label, f"{path}.{k}" if path else k)
        return
    hint = (
        "tensors belong in a tensor group"
        if isinstance(obj, torch.Tensor)
        else "convert it to a list/dict/str/int/float/bool/None"
    )
    raise CheckpointError(
        f"{where} is a {type(obj).__name__}, which is not JSON ({hint}); checkpoints never pickle"
    )


def _dumps(obj: Any, label: str) -> bytes:
    _check_json(obj, label)
    return json.dumps(obj, allow_nan=False, indent=1).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-strict JSON constant {name}")


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{file}: expected strict JSON, could not read it ({e})") from e


# ----------------------------------------------------------------------------- files
def _fsync_dir(d: Path) -> None:
    if os.name == "nt":  # Windows cannot open a directory for fsync
        return
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(f: Path) -> None:
    with open(f, "rb+") as fh:
        os.fsync(fh.fileno())


def _write_bytes(f: Path, data: bytes, fsync: bool) -> None:
    with open(f, "wb") as fh:
        fh.write(data)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())


def _file_digest(f: Path, algo: str = CHECKSUM) -> str:
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


@functools.cache
def _linux_io() -> tuple[Callable | None, Callable | None]:
    """libc's ``fallocate`` and ``sync_file_range`` (64-bit Linux), else ``(None, None)``.

    Both only make writing faster; a failing call is ignored (the fsync decides)."""
    if not sys.platform.startswith("linux") or sys.maxsize < 2**32:
        return None, None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None, None
    fns = []
    for name, args in (
        ("fallocate", (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)),
        ("sync_file_range", (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)),
    ):
        fn = getattr(libc, name, None)
        if fn is not None:
            fn.argtypes, fn.restype = args, ctypes.c_int
        fns.append(fn)
    return fns[0], fns[1]


_SYNC_FILE_RANGE_WRITE = 2  # start write-back of the range, do not wait for it


@functools.cache
def _st_dtypes() -> dict[torch.dtype, str]:
    """torch dtype -> safetensors dtype name, in the order safetensors lays tensors out
    (descending alignment, its Dtype enum order); others are left to safetensors."""
    names = [
        ("uint64", "U64"),
        ("int64", "I64"),
        ("float64", "F64"),
        ("complex64", "C64"),
        ("float32", "F32"),
        ("uint32", "U32"),
        ("int32", "I32"),
        ("bfloat16", "BF16"),
        ("float16", "F16"),
        ("uint16", "U16"),
        ("int16", "I16"),
        ("float8_e4m3fn", "F8_E4M3"),
        ("float8_e5m2", "F8_E5M2"),
        ("int8", "I8"),
        ("uint8", "U8"),
        ("bool", "BOOL"),
    ]
    return {getattr(torch, t): n for t, n in names if hasattr(torch, t)}


def _safetensors_parts(
    tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> list[memoryview] | None:
    """The bytes of ``safetensors.torch.save_file(tensors, f, metadata)`` as a header plus
    zero-copy views of the tensors' memory, or None where safetensors should write it
    (a dtype not listed in :func:`_st_dtypes`, a big-endian machine, a sparse tensor).

    Tensors must be CPU and contiguous (as :func:`_dedup` returns them)."""
    dtypes = _st_dtypes()
    if sys.byteorder != "little" or any(
        t.dtype not in dtypes or t.layout != torch.strided for t in tensors.values()
    ):
        return None
    rank = {dt: i for i, dt in enumerate(dtypes)}
    header: dict[str, Any] = {"__metadata__": metadata}
    parts: list[memoryview] = []
    offset = 0
    for key, t in sorted(tensors.items(), key=lambda kv: (rank[kv[1].dtype], kv[0])):
        n = t.numel() * t.element_size()
        header[key] = {
            "dtype": dtypes[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
        if n:
            try:  # a 1-D uint8 view of the same memory; numpy keeps the tensor alive
                parts.append(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
            except Exception:  # e.g. a conjugate-bit view: safetensors' path handles it
                return None
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head += b" " * (-len(head) % 8)  # safetensors pads the header to a multiple of 8
    return [memoryview(len(head).to_bytes(8, "little") + head), *parts]


def _write_parts(fd: int, parts: list[memoryview], fsync: bool, h: Any) -> None:
    """Write ``parts`` to the new, empty file ``fd``, hashing them into ``h`` (unless None)
    as they go; with ``fsync``, start each chunk's write-back as soon as it is written."""
    fallocate, sync_range = _linux_io()
    if fallocate is not None:  # preallocated extents make the writes ~1.3x faster (ext4)
        fallocate(fd, 0, 0, sum(len(p) for p in parts))
    written = flushing = 0
    for part in parts:
        for i in range(0, len(part), _CHUNK):
            chunk = part[i : i + _CHUNK]
            if h is not None:
                h.update(chunk)
            written += len(chunk)
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
            if fsync and sync_range is not None and written - flushing >= _CHUNK:
                sync_range(fd, flushing, written - flushing, _SYNC_FILE_RANGE_WRITE)
                flushing = written


def _aside(d: Path, prefix: str) -> Path:
    """A hidden sibling name for ``d`` that find_latest never considers."""
    return d.parent / f"{prefix}{d.name}-{os.getpid()}-{secrets.token_hex(4)}"


def _check_name(name: Any, what: str) -> str:
    # Names come from a manifest we may not trust: no paths, no hidden files.
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise CheckpointError(
            f"{what}: invalid file or group name {name!r}; expected a plain "
            "name of letters, digits, '_', '-', '.'"
        )
    return name


# ----------------------------------------------------------------------------- tensors
def _dedup(tensors: dict, label: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """CPU, contiguous tensors safetensors accepts, plus ``{alias: saved key}``.

    Keys holding the very same view (tied weights) are saved once and aliased; other
    views into one storage are copied, since safetensors refuses shared memory.
    """
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    views: dict[tuple, str] = {}
    storages: set[tuple] = set()
    for k, t in tensors.items():
        if not isinstance(k, str) or not isinstance(t, torch.Tensor):
            raise CheckpointError(
                f"{label}: entry {k!r} is a {type(t).__name__}; expected str -> torch.Tensor"
            )
        if t.device.type == "meta":
            raise CheckpointError(f"{label}: tensor '{k}' is on the meta device (no data)")
        t = t.detach()
        if t.numel() > 0:
            storage = (t.device, t.untyped_storage().data_ptr())
            view = (*storage, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
            if view in views:
                aliases[k] = views[view]
                continue
            views[view] = k
            if storage in storages:
                t = t.clone()
            storages.add(storage)
        out[k] = t.to("cpu").contiguous()
    return out, aliases


def _versions() -> dict[str, str]:
    return dict(_installed_versions())


@functools.cache  # importlib.metadata scans sys.path: ~1 ms per package
def _installed_versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "safetensors", "accelerate", "timm", "acchooks"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _write_group(
    f: Path, tensors: dict[str, torch.Tensor], fsync: bool, checksum: bool, pool: ThreadPoolExecutor
) -> Future:
    """Write one tensor group as the new safetensors file ``f``.

    Returns once every byte is written (to the page cache), with a future that finishes
    the file in ``pool`` (fsync, close) and gives its digest (None without ``checksum``).
    """
    parts = _safetensors_parts(tensors, _ST_METADATA)
    if parts is None:  # rare dtypes: safetensors writes it, then the file is read back
        safetensors.torch.save_file(tensors, f, metadata=_ST_METADATA)

        def finish_file() -> str | None:
            if fsync:
                _fsync_file(f)
            return _file_digest(f) if checksum else None

        return pool.submit(finish_file)

    h = CHECKSUMS[CHECKSUM]() if checksum else None
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)

    def finish_fd() -> str | None:
        try:
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return h.hexdigest() if h is not None else None

    try:
        _write_parts(fd, parts, fsync, h)
        return pool.submit(finish_fd)
    except BaseException:
        os.close(fd)
        raise


# ----------------------------------------------------------------------------- save
def save_checkpoint(
    path: str | Path,
    *,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict | None = None,
    tensors: dict[str, dict[str, torch.Tensor]] | None = None,
    state: dict | None = None,
    meta: dict | None = None,
    fsync: bool = True,
    checksum: bool = True,
) -> Path:
    """Write a checkpoint directory at ``path``; it appears only once complete."""
    target = Path(path)
    _check_name(target.name, str(target))
    if target.exists() and not (target / MANIFEST).is_file():
        raise CheckpointError(
            f"{target} exists and is not an acchooks checkpoint; refusing "
            "to replace it (hint: choose another name or remove it)"
        )
    # Reject bad input before the first byte is written.
    groups: dict[str, dict] = {MODEL_FILE: model_state}
    jsons: dict[str, bytes] = {}
    contents: dict[str, Any] = {
        "model": MODEL_FILE,
        "optimizer": None,
        "tensors": {},
        "state": None,
    }
    if optimizer_state is not None:
        try:
            groups[OPTIM_TENSORS], odata = flatten_optimizer_state(optimizer_state)
        except TypeError as e:
            raise CheckpointError(f"optimizer_state: {e}") from e
        jsons[OPTIM_JSON] = _dumps(odata, OPTIM_JSON)
        contents["optimizer"] = [OPTIM_TENSORS, OPTIM_JSON]
    for name, group in (tensors or {}).items():
        if _check_name(name, "tensors") in _RESERVED_GROUPS or name.endswith(".safetensors"):
            raise CheckpointError(f"tensors: group name '{name}' is reserved; use another one")
        groups[f"{name}.safetensors"] = group
        contents["tensors"][name] = f"{name}.safetensors"
    if state is not None:
        jsons[STATE_FILE] = _dumps(state, STATE_FILE)
        contents["state"] = STATE_FILE
    _check_json(meta or {}, "manifest.json meta")

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _aside(target, STAGING_PREFIX)
    staging.mkdir()
    try:
        aliases = {}
        digests: dict[str, str | None] = {}
        # The pool fsyncs (and closes) each file while the next one is written; leaving
        # the `with` waits for all of it, also on an error, before the rmtree below.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="acchooks-save") as pool:
            pending: dict[str, Future] = {}
            for fname, group in groups.items():
                uniq, al = _dedup(group, fname)
                try:
                    pending[fname] = _write_group(staging / fname, uniq, fsync, checksum, pool)
                except Exception as e:
                    raise CheckpointError(f"{fname}: could not write it ({e})") from e
                del uniq  # free the CPU copy before the next group
                if fname in (MODEL_FILE, OPTIM_TENSORS):  # its bytes are all written
                    kill_point(
                        "model" if fname == MODEL_FILE else "optimizer",
                        truncate_half(staging / fname),
                    )
                if al:
                    aliases[fname] = al
            for fname, data in jsons.items():
                _write_bytes(staging / fname, data, fsync)
                digests[fname] = CHECKSUMS[CHECKSUM](data).hexdigest() if checksum else None
            for fname, fut in pending.items():
                try:
                    digests[fname] = fut.result()
                except Exception as e:
                    raise CheckpointError(f"{fname}: could not write it ({e})") from e
        files = {}
        for fname in [*groups, *jsons]:
            files[fname] = {
                "size": (staging / fname).stat().st_size,
                **({CHECKSUM: digests[fname]} if checksum else {}),
            }
        kill_point("before_manifest")
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "meta": meta or {},
            "versions": _versions(),
            "contents": contents,
            "aliases": aliases,
            "files": files,
        }
        _write_bytes(staging / MANIFEST, _dumps(manifest, MANIFEST), fsync)
        if fsync:
            _fsync_dir(staging)
        kill_point("before_rename")
        _commit(staging, target, fsync)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _commit(staging: Path, target: Path, fsync: bool) -> None:
    """Rename the finished staging dir onto ``target``, replacing an older one."""
    trash = None
    if target.exists():  # a re-save of the same name: move the old one out of the way
        trash = _aside(target, TRASH_PREFIX)
        os.rename(target, trash)
    try:
        os.rename(staging, target)
    except BaseException:
        if trash is not None:  # put the previous checkpoint back
            os.rename(trash, target)
        raise
    if fsync:
        _fsync_dir(target.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
