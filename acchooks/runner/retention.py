"""Checkpoint retention: which of a run's numbered checkpoints ``max_keep_ckpts`` removes,
and what retention never removes (the checkpoint ``latest`` names, the newest one with
finite weights). The main process only, no collective: the
:class:`~.checkpointer.Checkpointer` calls these and does the agreeing.
"""

from __future__ import annotations

import logging
import os.path as osp
import re
from pathlib import Path

from .. import checkpoint as ckpt_io  # looked up at call time: tests patch it

_NUMBERED = re.compile(r"([A-Za-z]+)_\d+")


def rotate(saved: str, keep: int, logger: logging.Logger) -> None:
    """Keep the newest ``keep`` complete ``<prefix>_<N>`` checkpoints beside ``saved``
    (counting it), removing the oldest by N, except what :func:`protected` names."""
    m = _NUMBERED.fullmatch(osp.basename(saved))
    if m and keep > 0:
        root = osp.dirname(saved)
        found = [
            p for _, p in ckpt_io.list_checkpoints(root, m.group(1)) if osp.basename(p) != m[0]
        ]
        doomed = found[: max(len(found) - (keep - 1), 0)]
        kept = protected(root, [Path(saved), *reversed(found)])
        for p in doomed:
            if Path(osp.realpath(p)) in kept:
                logger.warning(
                    f"keeping {p.name} beyond max_keep_ckpts={keep}: it is the newest "
                    "checkpoint with finite weights (what latest names)"
                )
            else:
                ckpt_io.remove_checkpoint(p)


def protected(root: str, newest_first: list[Path]) -> set[Path]:
    """What retention must not remove (real paths): the checkpoint ``latest`` names in
    ``root``, and the newest of ``newest_first`` whose manifest verifies and records
    finite weights."""
    kept = set()
    pointed = ckpt_io.read_latest_pointer(root)
    if pointed is not None:
        kept.add(Path(osp.realpath(pointed)))
    for p in newest_first:
        try:
            manifest = ckpt_io.verify_checkpoint(p, "none")
        except ckpt_io.CheckpointError:
            continue
        if not ckpt_io.nonfinite_weights(manifest):
            kept.add(Path(osp.realpath(p)))
            break
    return kept
