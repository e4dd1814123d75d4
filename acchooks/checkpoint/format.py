"""The checkpoint directory format and :func:`save_checkpoint` (the reader is :mod:`.reader`).

A checkpoint is a directory such as ``<work_dir>/epoch_3`` holding ``model.safetensors``
(loadable with plain ``safetensors.torch.load_file``), optionally ``optimizer.safetensors``
+ ``optimizer.json``, one ``<name>.safetensors`` per extra tensor group, ``state.json``,
and ``manifest.json``, written last, listing every file with its size (and xxh3_128 digest,
see :mod:`.checksum`) and carrying its own digest (``manifest_digest``, :func:`manifest_digest`;
format version 2). Version-1 manifests (earlier acchooks) have none: they are read after the
same schema check (:mod:`.schema`), their files still verified.

It becomes visible atomically (:mod:`.atomic`): everything is written into a hidden staging
directory next to the target, fsynced, then renamed into place. A kill at any moment leaves
either the old checkpoint or the new one, never a half-written directory with a valid
manifest. Only safetensors and strict JSON are read or written: nothing here can unpickle.
Tensor files are written by :mod:`.writer`. The ``kill_point`` calls are test-only fault
injection (see :mod:`.faults`).
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .atomic import STAGING_PREFIX, aside, commit, fsync_dir, write_bytes
from .checksum import CHECKSUM, CHECKSUMS
from .faults import kill_point, truncate_half
from .optimizer_state import flatten_optimizer_state
from .writer import write_group

FORMAT, VERSION = "acchooks-checkpoint", 2
MANIFEST_DIGEST = "manifest_digest"  # the manifest's own digest (version >= 2)
MAX_JSON_DEPTH = 100  # nesting of any JSON a checkpoint writes or reads
MANIFEST, MODEL_FILE, STATE_FILE = "manifest.json", "model.safetensors", "state.json"
OPTIM_TENSORS, OPTIM_JSON = "optimizer.safetensors", "optimizer.json"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_RESERVED_GROUPS = {"model", "optimizer", "state", "manifest"}


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
def check_json(obj: Any, label: str, path: str = "", depth: int = 0) -> None:
    """Raise CheckpointError naming the key path of the first non-strict-JSON value (or
    the first nested deeper than :data:`MAX_JSON_DEPTH`, which no reader would accept)."""
    where = f"{label}: value at '{path or '<root>'}'"
    if depth > MAX_JSON_DEPTH:
        raise CheckpointError(
            f"{where} is nested deeper than {MAX_JSON_DEPTH} levels; flatten that state"
        )
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
            check_json(v, label, f"{path}[{i}]", depth + 1)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise CheckpointError(
                    f"{where} has a non-string key {k!r} "
                    f"({type(k).__name__}); JSON keys must be str"
                )
            check_json(v, label, f"{path}.{k}" if path else k, depth + 1)
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
    check_json(obj, label)
    return json.dumps(obj, allow_nan=False, indent=1).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-strict JSON constant {name}")


def read_json(file: Path) -> Any:
    """The strict JSON in ``file``; CheckpointError naming it if it is not that."""
    try:
        return json.loads(file.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise CheckpointError(
            f"{file}: nested too deeply to read (checkpoints nest at most {MAX_JSON_DEPTH} "
            "levels); the file is corrupt or not ours"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{file}: expected strict JSON, could not read it ({e})") from e


def manifest_digest(manifest: dict) -> str:
    """The digest a manifest records of itself: of its canonical JSON (sorted keys, no
    spaces) without the ``manifest_digest`` entry, so a reader recomputes it from what it
    parsed."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return CHECKSUMS[CHECKSUM](data.encode("utf-8")).hexdigest()


def check_name(name: Any, what: str) -> str:
    """``name`` if it is a plain file or group name, else CheckpointError naming ``what``."""
    # Names come from a manifest we may not trust: no paths, no hidden files.
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise CheckpointError(
            f"{what}: invalid file or group name {name!r}; expected a plain "
            "name of letters, digits, '_', '-', '.'"
        )
    return name


# ----------------------------------------------------------------------------- tensors
def dedup_tensors(tensors: dict, label: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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


# ----------------------------------------------------------------------------- save
def _plan(
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict | None,
    tensors: dict[str, dict[str, torch.Tensor]] | None,
    state: dict | None,
) -> tuple[dict[str, dict], dict[str, bytes], dict[str, Any]]:
    """The tensor groups and JSON files to write, by file name, and the manifest's
    ``contents``; rejects bad input before the first byte is written."""
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
        if check_name(name, "tensors") in _RESERVED_GROUPS or name.endswith(".safetensors"):
            raise CheckpointError(f"tensors: group name '{name}' is reserved; use another one")
        groups[f"{name}.safetensors"] = group
        contents["tensors"][name] = f"{name}.safetensors"
    if state is not None:
        jsons[STATE_FILE] = _dumps(state, STATE_FILE)
        contents["state"] = STATE_FILE
    return groups, jsons, contents


def _write_files(
    staging: Path, groups: dict[str, dict], jsons: dict[str, bytes], fsync: bool, checksum: bool
) -> tuple[dict[str, dict[str, str]], dict[str, str | None]]:
    """Write every data file into ``staging``; returns the aliases and the digests."""
    aliases = {}
    digests: dict[str, str | None] = {}
    # The pool fsyncs (and closes) each file while the next one is written; leaving
    # the `with` waits for all of it, also on an error, before the caller's rmtree.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="acchooks-save") as pool:
        pending: dict[str, Future] = {}
        for fname, group in groups.items():
            uniq, al = dedup_tensors(group, fname)
            try:
                pending[fname] = write_group(staging / fname, uniq, fsync, checksum, pool)
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
            write_bytes(staging / fname, data, fsync)
            digests[fname] = CHECKSUMS[CHECKSUM](data).hexdigest() if checksum else None
        for fname, fut in pending.items():
            try:
                digests[fname] = fut.result()
            except Exception as e:
                raise CheckpointError(f"{fname}: could not write it ({e})") from e
    return aliases, digests


def _manifest(meta: dict | None, contents: dict, aliases: dict, files: dict) -> dict:
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
    manifest[MANIFEST_DIGEST] = {CHECKSUM: manifest_digest(manifest)}
    return manifest


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
    check_name(target.name, str(target))
    if target.exists() and not (target / MANIFEST).is_file():
        raise CheckpointError(
            f"{target} exists and is not an acchooks checkpoint; refusing "
            "to replace it (hint: choose another name or remove it)"
        )
    groups, jsons, contents = _plan(model_state, optimizer_state, tensors, state)
    check_json(meta or {}, "manifest.json meta")

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = aside(target, STAGING_PREFIX)
    staging.mkdir()
    try:
        aliases, digests = _write_files(staging, groups, jsons, fsync, checksum)
        files = {}
        for fname in [*groups, *jsons]:
            files[fname] = {
                "size": (staging / fname).stat().st_size,
                **({CHECKSUM: digests[fname]} if checksum else {}),
            }
        kill_point("before_manifest")
        manifest = _manifest(meta, contents, aliases, files)
        write_bytes(staging / MANIFEST, _dumps(manifest, MANIFEST), fsync)
        if fsync:
            fsync_dir(staging)
        kill_point("before_rename")
        commit(staging, target, fsync)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
