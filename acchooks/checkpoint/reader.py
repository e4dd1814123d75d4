"""Reading and verifying checkpoint directories written by :mod:`.format`.

The manifest is checked first: format, version, its own digest (format version 2; a
version-1 manifest of an earlier acchooks has none and is read without it) and its schema
(:mod:`.schema`). Every file is checked against the manifest (size always, its checksum by
default: xxh3_128, or sha256 in checkpoints written by earlier acchooks versions) before it
is parsed, every JSON file is checked against its schema before it is used, a safetensors header is bounds-checked before safetensors sees it, and only
safetensors and strict JSON are read: nothing here can unpickle.
"""

from __future__ import annotations

from pathlib import Path

import safetensors.torch
import torch

from .checksum import CHECKSUMS, file_digest
from .format import (
    FORMAT,
    MANIFEST,
    MANIFEST_DIGEST,
    MODEL_FILE,
    VERSION,
    Checkpoint,
    CheckpointError,
    check_name,
    manifest_digest,
    read_json,
)
from .optimizer_state import unflatten_optimizer_state
from .schema import check_depth, check_manifest, check_optimizer_json

MAX_HEADER_BYTES = 100 * 1024**2  # real headers are KBs; a larger claim is corruption or hostile
_PTH_HINT = "if it is a .pth/.pt file from another tool, use load_from (weights only)"


def read_safetensors(f: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """``load_file`` after checking the header length, so a hostile file cannot make
    the reader allocate a huge header buffer."""
    f = Path(f)
    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise CheckpointError(f"{f}: cannot read it ({e.strerror})") from None
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    if n < 0 or n > size - 8 or n > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{f}: not a valid safetensors file: header claims {n} bytes but the file has "
            f"{size} bytes (limit {MAX_HEADER_BYTES}); the file is corrupt or not a checkpoint"
        )
    try:
        return safetensors.torch.load_file(f, device=str(device))
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{f}: safetensors could not read it ({e})") from e


def verify_checkpoint(path: str | Path, verify: str = "checksum") -> dict:
    """Check the manifest and every file it lists; return the manifest."""
    if verify not in ("checksum", "size", "none"):
        raise ValueError(f"verify must be 'checksum', 'size' or 'none', got {verify!r}")
    d = Path(path)
    manifest = _read_manifest(d)
    for name, info in manifest["files"].items():
        f = d / check_name(name, str(d / MANIFEST))
        if not isinstance(info, dict):
            raise CheckpointError(
                f"{d / MANIFEST}: entry for '{name}' should be a mapping "
                f"with 'size', found {type(info).__name__}"
            )
        if verify != "none":
            _verify_file(f, info, verify)
    return manifest


def _read_manifest(d: Path) -> dict:
    """The manifest of checkpoint directory ``d``, checked for format and version."""
    if d.is_file():
        raise CheckpointError(
            f"not an acchooks checkpoint: {d} is a file, not a checkpoint directory; {_PTH_HINT}"
        )
    if not d.is_dir():
        raise CheckpointError(f"checkpoint {d} does not exist")
    if not (d / MANIFEST).is_file():
        raise CheckpointError(f"not an acchooks checkpoint: {d} has no {MANIFEST}; {_PTH_HINT}")
    manifest = read_json(d / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{d / MANIFEST}: expected format '{FORMAT}', found {found!r}")
    version = manifest.get("version")
    if type(version) is not int or not 1 <= version <= VERSION:
        raise CheckpointError(
            f"{d / MANIFEST}: format version {version!r} is not supported (this acchooks "
            f"reads 1 to {VERSION}); upgrade acchooks if the checkpoint is newer"
        )
    _check_own_digest(manifest, d / MANIFEST)
    check_depth(manifest, d / MANIFEST)
    check_manifest(manifest, d / MANIFEST)
    return manifest


def _check_own_digest(manifest: dict, file: Path) -> None:
    """Version 2 manifests carry their own digest; version 1 (earlier acchooks) may not."""
    recorded = manifest.get(MANIFEST_DIGEST)
    if recorded is None and manifest["version"] == 1:
        return
    if not isinstance(recorded, dict) or not any(isinstance(v, str) for v in recorded.values()):
        raise CheckpointError(
            f"{file}: field '{MANIFEST_DIGEST}' is missing or malformed (found "
            f"{recorded!r}); a version-{manifest['version']} manifest records its own digest, "
            "so this one is damaged (use an older checkpoint)"
        )
    algo, digest = next((a, v) for a, v in recorded.items() if isinstance(v, str))
    actual = manifest_digest(manifest) if algo == "xxh3_128" else None
    if actual != digest:
        raise CheckpointError(
            f"{file}: expected {MANIFEST_DIGEST} {algo} {digest}, found {actual}; the "
            "manifest was changed or is corrupt (use an older checkpoint)"
        )


def _verify_file(f: Path, info: dict, verify: str) -> None:
    """Check one listed file's size and, with ``verify='checksum'``, its digest."""
    if not f.is_file():
        raise CheckpointError(
            f"{f}: missing; {MANIFEST} lists it with {info.get('size')} "
            "bytes (hint: the checkpoint was damaged; use an older one)"
        )
    actual = f.stat().st_size
    if actual != info.get("size"):
        raise CheckpointError(
            f"{f}: expected {info.get('size')} bytes (from {MANIFEST}), "
            f"found {actual} bytes; the file is truncated or was changed"
        )
    if verify != "checksum":
        return
    # The first digest the entry carries: xxh3_128, or sha256 (earlier versions).
    algo = next((a for a in CHECKSUMS if info.get(a)), None)
    if algo is None:  # written with checksum=False: the size is all there is
        return
    digest = file_digest(f, algo)
    if digest != info[algo]:
        raise CheckpointError(
            f"{f}: expected {algo} {info[algo]}, found {digest}; "
            "the file is corrupt (same size, different bytes)"
        )


def listed_file(d: Path, manifest: dict, fname: str) -> Path:
    """``d / fname`` if the manifest lists it (so it was verified); else CheckpointError."""
    if check_name(fname, str(d / MANIFEST)) not in manifest["files"]:
        raise CheckpointError(f"{d / MANIFEST}: '{fname}' is used but not listed in 'files'")
    return d / fname


def read_group(
    d: Path, manifest: dict, fname: str, device: str | torch.device
) -> dict[str, torch.Tensor]:
    """One safetensors file of the checkpoint, with its tied-weight aliases restored."""
    out = read_safetensors(listed_file(d, manifest, fname), device)
    for alias, key in manifest.get("aliases", {}).get(fname, {}).items():
        if key not in out:
            raise CheckpointError(f"{d / fname}: alias '{alias}' points to missing '{key}'")
        out[alias] = out[key]  # tied weights: same tensor under both names
    return out


def read_model_state(
    path: str | Path, *, verify: str = "checksum", map_location: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Only the model weights of a checkpoint directory (verified like the rest)."""
    d = Path(path)
    manifest = verify_checkpoint(d, verify)
    return read_group(d, manifest, manifest["contents"].get("model") or MODEL_FILE, map_location)


def load_checkpoint(
    path: str | Path, *, verify: str = "checksum", map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Verify and read a checkpoint directory written by ``save_checkpoint``.

    ``map_location`` applies to the model and the extra tensor groups.
    """
    d = Path(path)
    manifest = verify_checkpoint(d, verify)
    contents = manifest["contents"]
    model_state = read_group(d, manifest, contents.get("model") or MODEL_FILE, map_location)
    optimizer_state = None
    if contents.get("optimizer"):
        tfile, jfile = contents["optimizer"]
        # Always CPU, as optimizer.state_dict() has them: load_state_dict moves each state
        # tensor to its param's device but keeps Adam's 'step' where it finds it.
        otensors = read_group(d, manifest, tfile, "cpu")
        data = read_json(listed_file(d, manifest, jfile))
        check_optimizer_json(data, d / jfile)
        try:
            optimizer_state = unflatten_optimizer_state(otensors, data)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{d / jfile}: cannot rebuild the optimizer state ({e})") from e
    groups = {
        name: read_group(d, manifest, f, map_location)
        for name, f in contents.get("tensors", {}).items()
    }
    state = {}
    if contents.get("state"):
        sfile = listed_file(d, manifest, contents["state"])
        state = read_json(sfile)
        if not isinstance(state, dict):
            raise CheckpointError(f"{sfile}: expected a JSON mapping, found {type(state).__name__}")
        check_depth(state, sfile)
    return Checkpoint(d, manifest, model_state, optimizer_state, groups, state)
