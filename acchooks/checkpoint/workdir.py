"""Work-dir housekeeping: finding checkpoints, the ``latest`` pointer, safe deletion and
cleanup of the staging/trash directories left by killed saves and deletes.

Checkpoints are the visible sub-directories named ``epoch_N``/``iter_N`` (or holding a
manifest); ``<work_dir>/latest`` is a one-line text file naming the newest one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

from .atomic import STAGING_PREFIX, TRASH_PREFIX, aside, fsync_dir, write_bytes
from .faults import kill_point
from .format import MANIFEST, CheckpointError
from .reader import verify_checkpoint

LATEST = "latest"
CHECKPOINT_NAME = re.compile(r"(epoch|iter)_\d+")
_TMP_PREFIX = ".latest.tmp-"


def list_checkpoints(directory: str | Path, prefix: str) -> list[tuple[int, Path]]:
    """``(N, path)`` of every complete (``manifest.json`` present) ``<prefix>_<N>``
    directory in ``directory``, oldest (lowest N) first; none if it does not exist."""
    d = Path(directory)
    if not d.is_dir():
        return []
    pat = re.compile(rf"{re.escape(prefix)}_(\d+)")
    return sorted(
        (int(m.group(1)), p)
        for p in d.iterdir()
        if (m := pat.fullmatch(p.name)) and (p / MANIFEST).is_file()
    )


def _iter_of(manifest: dict) -> int:
    it = manifest.get("meta", {}).get("iter")
    return it if isinstance(it, int) and not isinstance(it, bool) else -1


def is_full_state(manifest: dict) -> bool:
    """Does the checkpoint hold what a resume needs (the optimizer state), not only weights
    (``save_optimizer=False``, ``best_*``)?"""
    return bool(manifest["contents"].get("optimizer"))


def nonfinite_weights(manifest: dict) -> list[str]:
    """The model tensors a checkpoint recorded as holding NaN/inf (empty: all finite)."""
    return list(manifest.get("meta", {}).get("nonfinite_weights") or [])


def _scan(wd: Path) -> tuple[list[tuple[tuple[int, float], Path, dict]], list[tuple[float, str]]]:
    """Checkpoint-looking dirs of ``wd``: those whose manifest verifies (digest, schema),
    keyed by ``(meta['iter'], manifest mtime)``, newest first; and ``(mtime, reason)`` of
    those whose manifest does not."""
    ranked: list[tuple[tuple[int, float], Path, dict]] = []
    rejected: list[tuple[float, str]] = []
    for d in sorted(wd.iterdir()):
        # Hidden entries are staging/trash dirs of unfinished saves and deletes.
        if d.name.startswith(".") or not d.is_dir():
            continue
        if not (CHECKPOINT_NAME.fullmatch(d.name) or (d / MANIFEST).exists()):
            continue
        mtime = (d / MANIFEST).stat().st_mtime if (d / MANIFEST).is_file() else d.stat().st_mtime
        try:
            manifest = verify_checkpoint(d, "none")
        except CheckpointError as e:
            rejected.append((mtime, f"skipped {d.name}: {e}"))
        else:
            ranked.append(((_iter_of(manifest), mtime), d, manifest))
    ranked.sort(key=lambda x: x[0], reverse=True)
    return ranked, rejected


def _usable(
    wd: Path, verify: str, full_state: bool, first_only: bool
) -> tuple[list[Path], list[str]]:
    """Checkpoints of ``wd`` that verify with ``verify``, newest first (only the newest with
    ``first_only``), and why newer ones were skipped (weights-only ones silently)."""
    ranked, rejected = _scan(wd)
    found: list[Path] = []
    reasons = []
    newest = None
    for key, d, manifest in ranked:
        if full_state and not is_full_state(manifest):
            continue
        try:
            verify_checkpoint(d, verify)
        except CheckpointError as e:
            reasons += [] if found else [f"skipped {d.name}: {e}"]  # newer than the winner
            continue
        bad = nonfinite_weights(manifest)
        if bad:  # kept for debugging, never resumed from automatically
            why = f"skipped {d.name}: non-finite values in {', '.join(bad[:5])}"
            reasons += [] if found else [why]
            continue
        found.append(d)
        newest = key if newest is None else newest
        if first_only:
            break
    # no usable manifest: report those that look newer than the winner
    reasons += [r for mtime, r in rejected if newest is None or mtime >= newest[1]]
    return found, reasons


def find_latest(
    work_dir: str | Path, verify: str = "checksum", full_state: bool = False
) -> tuple[Path | None, list[str]]:
    """The newest checkpoint under ``work_dir`` that verifies, and why newer ones did not.

    Candidates are visible sub-directories named ``epoch_N``/``iter_N`` or holding a
    manifest, whose manifest verifies (its digest and schema); newest means the highest
    ``meta['iter']``, then the latest manifest mtime. They are verified newest first and
    the first that passes wins, so checksums are computed only for it and for newer,
    damaged ones. Checkpoints with non-finite weights are never picked; with
    ``full_state`` neither are weights-only ones (what auto-resume needs).
    """
    wd = Path(work_dir)
    if not wd.is_dir():
        return None, []
    found, reasons = _usable(wd, verify, full_state, first_only=True)
    return (found[0] if found else None), reasons


def resume_candidates(work_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Every checkpoint auto-resume may try, newest first: full state, finite weights, a
    manifest that verifies and files of the listed sizes; and why newer ones were skipped.
    No file is hashed here: the load that follows verifies each checksum, once."""
    wd = Path(work_dir)
    if not wd.is_dir():
        return [], []
    return _usable(wd, "size", full_state=True, first_only=False)


def update_latest_pointer(work_dir: str | Path, ckpt_path: str | Path) -> None:
    """Atomically write ``<work_dir>/latest`` holding the checkpoint's directory name
    (relative to ``work_dir`` when inside it, else absolute)."""
    wd, ckpt = Path(work_dir), Path(ckpt_path)
    try:
        text = str(ckpt.resolve().relative_to(wd.resolve()))
    except ValueError:
        text = str(ckpt.resolve())
    tmp = wd / f"{_TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
    write_bytes(tmp, (text + "\n").encode("utf-8"), fsync=True)
    kill_point("latest")
    os.replace(tmp, wd / LATEST)
    fsync_dir(wd)


def read_latest_pointer(work_dir: str | Path) -> Path | None:
    """The checkpoint path ``<work_dir>/latest`` names, or None if there is none."""
    f = Path(work_dir) / LATEST
    if not f.is_file():
        return None
    text = f.read_text(encoding="utf-8").strip()
    return (Path(work_dir) / text) if text else None


def follow_latest(path: str | os.PathLike) -> str:
    """``path`` itself, or the checkpoint a ``latest`` pointer file names (so
    ``<work_dir>/latest`` works wherever a checkpoint path is expected)."""
    p = Path(path)
    if p.name != LATEST or not p.is_file():
        return os.fspath(path)
    target = read_latest_pointer(p.parent)
    if target is None:
        raise CheckpointError(f"{p} is an empty 'latest' pointer: it names no checkpoint")
    return os.fspath(target)


def remove_checkpoint(path: str | Path) -> None:
    """Delete a committed checkpoint directory; a missing one is ignored.

    The directory is first renamed to a hidden trash name, so a kill mid-delete never
    leaves a half-deleted directory that still looks like a valid checkpoint.
    """
    d = Path(path)
    if not d.exists():
        return
    if not d.is_dir() or not ((d / MANIFEST).is_file() or not any(d.iterdir())):
        raise CheckpointError(
            f"refusing to delete {d}: not an acchooks checkpoint directory (no {MANIFEST})"
        )
    trash = aside(d, TRASH_PREFIX)
    os.rename(d, trash)
    fsync_dir(d.parent)
    kill_point("rotation", lambda: (trash / MANIFEST).unlink())  # test-only
    shutil.rmtree(trash, ignore_errors=True)


def clean_staging(work_dir: str | Path) -> list[Path]:
    """Remove staging/trash directories and pointer temp files left by killed processes.

    Call it before this process saves (e.g. at the start of a run, main process only):
    it does not tell a live concurrent save's staging directory from a dead one.
    """
    wd = Path(work_dir)
    if not wd.is_dir():
        return []
    removed = []
    for p in sorted(wd.iterdir()):
        if p.name.startswith((STAGING_PREFIX, TRASH_PREFIX, _TMP_PREFIX)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def prepare_work_dir(work_dir: str | Path, logger: logging.Logger | None = None) -> list[Path]:
    """Clean what killed saves left in ``work_dir`` (see :func:`clean_staging`), with one
    warning per removed entry. Main process only, before this run saves anything."""
    removed = clean_staging(work_dir)
    log = logger or logging.getLogger("acchooks")
    for p in removed:
        log.warning(
            f"removed {p.name} from {p.parent}: left by a save or delete that was "
            "interrupted (it was never a complete checkpoint)"
        )
    return removed
