"""The checkpoint directory format: write, read and verify one checkpoint.

A checkpoint is a directory such as ``<work_dir>/epoch_3`` holding ``model.safetensors``
(loadable with plain ``safetensors.torch.load_file``), optionally ``optimizer.safetensors``
+ ``optimizer.json``, one ``<name>.safetensors`` per extra tensor group, ``state.json``,
and ``manifest.json``, written last, listing every file with its size (and sha256).

It becomes visible atomically: everything is written into a hidden staging directory
next to the target, fsynced, then renamed into place. A kill at any moment leaves either
the old checkpoint or the new one, never a half-written directory with a valid manifest.
Only safetensors and strict JSON are read or written: nothing here can unpickle.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from .optimizer_state import flatten_optimizer_state, unflatten_optimizer_state

FORMAT, VERSION = "acchooks-checkpoint", 1
MANIFEST, MODEL_FILE, STATE_FILE = "manifest.json", "model.safetensors", "state.json"
OPTIM_TENSORS, OPTIM_JSON = "optimizer.safetensors", "optimizer.json"
STAGING_PREFIX, TRASH_PREFIX = ".staging-", ".trash-"
MAX_HEADER_BYTES = 100 * 1024**2  # real headers are KBs; a larger claim is corruption or hostile
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_RESERVED_GROUPS = {"model", "optimizer", "state", "manifest"}
_PTH_HINT = "if it is a .pth/.pt file from another tool, use load_from (weights only)"


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read; the message names the file."""


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
            raise CheckpointError(f"{where} is {obj}; strict JSON has no NaN/Infinity "
                                  "(hint: store None or a string instead)")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_json(v, label, f"{path}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{where} has a non-string key {k!r} "
                                      f"({type(k).__name__}); JSON keys must be str")
            _check_json(v, label, f"{path}.{k}" if path else k)
        return
    hint = ("tensors belong in a tensor group" if isinstance(obj, torch.Tensor)
            else "convert it to a list/dict/str/int/float/bool/None")
    raise CheckpointError(f"{where} is a {type(obj).__name__}, which is not JSON ({hint}); "
                          "checkpoints never pickle")


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


def _sha256(f: Path) -> str:
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _aside(d: Path, prefix: str) -> Path:
    """A hidden sibling name for ``d`` that find_latest never considers."""
    return d.parent / f"{prefix}{d.name}-{os.getpid()}-{secrets.token_hex(4)}"


def _check_name(name: Any, what: str) -> str:
    # Names come from a manifest we may not trust: no paths, no hidden files.
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise CheckpointError(f"{what}: invalid file or group name {name!r}; expected a plain "
                              "name of letters, digits, '_', '-', '.'")
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
            raise CheckpointError(f"{label}: entry {k!r} is a {type(t).__name__}; expected "
                                  "str -> torch.Tensor")
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


def _read_safetensors(f: Path, device: str | torch.device) -> dict[str, torch.Tensor]:
    """``load_file`` after checking the header length, so a hostile file cannot make
    the reader allocate a huge header buffer."""
    size = f.stat().st_size
    with open(f, "rb") as fh:
        head = fh.read(8)
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    if n < 0 or n > size - 8 or n > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{f}: not a valid safetensors file: header claims {n} bytes but the file has "
            f"{size} bytes (limit {MAX_HEADER_BYTES}); the file is corrupt or not a checkpoint")
    try:
        return safetensors.torch.load_file(f, device=str(device))
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{f}: safetensors could not read it ({e})") from e


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "safetensors", "accelerate", "timm", "acchooks"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


# ----------------------------------------------------------------------------- save
def save_checkpoint(path: str | Path, *, model_state: dict[str, torch.Tensor],
                    optimizer_state: dict | None = None,
                    tensors: dict[str, dict[str, torch.Tensor]] | None = None,
                    state: dict | None = None, meta: dict | None = None,
                    fsync: bool = True, checksum: bool = True) -> Path:
    """Write a checkpoint directory at ``path``; it appears only once complete."""
    target = Path(path)
    _check_name(target.name, str(target))
    if target.exists() and not (target / MANIFEST).is_file():
        raise CheckpointError(f"{target} exists and is not an acchooks checkpoint; refusing "
                              "to replace it (hint: choose another name or remove it)")
    # Reject bad input before the first byte is written.
    groups: dict[str, dict] = {MODEL_FILE: model_state}
    jsons: dict[str, bytes] = {}
    contents: dict[str, Any] = {"model": MODEL_FILE, "optimizer": None, "tensors": {},
                                "state": None}
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
        for fname, group in groups.items():
            uniq, al = _dedup(group, fname)
            try:
                safetensors.torch.save_file(uniq, staging / fname, metadata={"format": "pt"})
            except Exception as e:
                raise CheckpointError(f"{fname}: safetensors could not write it ({e})") from e
            del uniq  # free the CPU copy before the next group
            if fsync:
                _fsync_file(staging / fname)
            if al:
                aliases[fname] = al
        for fname, data in jsons.items():
            _write_bytes(staging / fname, data, fsync)
        files = {}
        for fname in [*groups, *jsons]:
            f = staging / fname
            files[fname] = {"size": f.stat().st_size, **({"sha256": _sha256(f)} if checksum else {})}
        manifest = {"format": FORMAT, "version": VERSION,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "meta": meta or {}, "versions": _versions(), "contents": contents,
                    "aliases": aliases, "files": files}
        _write_bytes(staging / MANIFEST, _dumps(manifest, MANIFEST), fsync)
        if fsync:
            _fsync_dir(staging)
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


# ----------------------------------------------------------------------------- load
def verify_checkpoint(path: str | Path, verify: str = "checksum") -> dict:
    """Check the manifest and every file it lists; return the manifest."""
    if verify not in ("checksum", "size", "none"):
        raise ValueError(f"verify must be 'checksum', 'size' or 'none', got {verify!r}")
    d = Path(path)
    if d.is_file():
        raise CheckpointError(f"not an acchooks checkpoint: {d} is a file, not a "
                              f"checkpoint directory; {_PTH_HINT}")
    if not d.is_dir():
        raise CheckpointError(f"checkpoint {d} does not exist")
    if not (d / MANIFEST).is_file():
        raise CheckpointError(f"not an acchooks checkpoint: {d} has no {MANIFEST}; {_PTH_HINT}")
    manifest = _read_json(d / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{d / MANIFEST}: expected format '{FORMAT}', found {found!r}")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise CheckpointError(f"{d / MANIFEST}: format version {manifest.get('version')!r} is "
                              f"not supported (this acchooks reads <= {VERSION}); upgrade acchooks")
    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(manifest.get("contents"), dict):
        raise CheckpointError(f"{d / MANIFEST}: expected 'files' and 'contents' mappings")
    for name, info in files.items():
        f = d / _check_name(name, str(d / MANIFEST))
        if verify == "none":
            continue
        if not f.is_file():
            raise CheckpointError(f"{f}: missing; {MANIFEST} lists it with {info.get('size')} "
                                  "bytes (hint: the checkpoint was damaged; use an older one)")
        actual = f.stat().st_size
        if actual != info.get("size"):
            raise CheckpointError(f"{f}: expected {info.get('size')} bytes (from {MANIFEST}), "
                                  f"found {actual} bytes; the file is truncated or was changed")
        if verify == "checksum" and info.get("sha256"):
            digest = _sha256(f)
            if digest != info["sha256"]:
                raise CheckpointError(f"{f}: expected sha256 {info['sha256']}, found {digest}; "
                                      "the file is corrupt (same size, different bytes)")
    return manifest


def load_checkpoint(path: str | Path, *, verify: str = "checksum",
                    map_location: str | torch.device = "cpu") -> Checkpoint:
    """Verify and read a checkpoint directory written by :func:`save_checkpoint`.

    ``map_location`` applies to the model and the extra tensor groups.
    """
    d = Path(path)
    manifest = verify_checkpoint(d, verify)
    contents, aliases = manifest["contents"], manifest.get("aliases", {})
    listed = manifest["files"]

    def read_group(fname: str, device: str | torch.device = map_location) -> dict[str, torch.Tensor]:
        if _check_name(fname, str(d / MANIFEST)) not in listed:
            raise CheckpointError(f"{d / MANIFEST}: '{fname}' is used but not listed in 'files'")
        out = _read_safetensors(d / fname, device)
        for alias, key in aliases.get(fname, {}).items():
            if key not in out:
                raise CheckpointError(f"{d / fname}: alias '{alias}' points to missing '{key}'")
            out[alias] = out[key]  # tied weights: same tensor under both names
        return out

    model_state = read_group(contents.get("model") or MODEL_FILE)
    optimizer_state = None
    if contents.get("optimizer"):
        tfile, jfile = contents["optimizer"]
        # Always CPU, as optimizer.state_dict() has them: load_state_dict moves each state
        # tensor to its param's device but keeps Adam's 'step' where it finds it.
        otensors = read_group(tfile, "cpu")
        data = _read_json(d / _check_name(jfile, str(d / MANIFEST)))
        try:
            optimizer_state = unflatten_optimizer_state(otensors, data)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{d / jfile}: cannot rebuild the optimizer state ({e})") from e
    groups = {name: read_group(f) for name, f in contents.get("tensors", {}).items()}
    state = _read_json(d / _check_name(contents["state"], str(d))) if contents.get("state") else {}
    return Checkpoint(d, manifest, model_state, optimizer_state, groups, state)
