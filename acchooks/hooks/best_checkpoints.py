"""The ranking of EvalHook's best checkpoints: ``evaluation=dict(save_best='auto',
max_keep_best=k)`` keeps the ``k`` best by the rule (timm's ``checkpoint_hist``; k=1, the
default, is mmcv's single best).

An evaluation enters the ranking when fewer than ``k`` are kept, or when its score is
strictly better than the ``k``-th (so k=1 is mmcv's "strictly better than the best");
ties keep the older checkpoint first. The ranking (paths and scores, best first) is
EvalHook's state, and it is updated *before* the new best checkpoint is written, so each
best checkpoint records the ranking that includes it. The Checkpointer removes the
checkpoints that fell out (:meth:`~acchooks.runner.checkpointer.Checkpointer.retain_best`)
only after the new one is committed.

Resume: the CheckpointHook (NORMAL) saves before the EvalHook (LOW) evaluates, so the
checkpoint a run resumes from holds the ranking from *before* the evaluation at the same
point. When that evaluation wrote a best checkpoint, :func:`ranking_saved_at` finds it (same
iteration counter) and the resumed run adopts the ranking it records, and finishes the
removal a kill may have interrupted: a resumed run keeps the same set as a straight one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError, verify_checkpoint
from ..checkpoint.reader import listed_file, read_json


def better(score: float, than: float, rule: str) -> bool:
    """Whether ``score`` is strictly better than ``than`` by ``rule``."""
    return score > than if rule == "greater" else score < than


class BestCheckpoints:
    """The ``keep`` best checkpoints as ``{'path', 'score'}`` entries, best first."""

    def __init__(self, keep: int = 1):
        self.keep = keep
        self.entries: list[dict[str, Any]] = []

    @property
    def paths(self) -> list[str]:
        return [e["path"] for e in self.entries]

    def admits(self, score: float, rule: str) -> bool:
        """Whether a checkpoint with ``score`` enters the ranking."""
        if math.isnan(score):
            return False
        if len(self.entries) < self.keep:
            return True
        return better(score, self.entries[self.keep - 1]["score"], rule)

    def insert(self, path: str, score: float, rule: str) -> list[str]:
        """Rank ``path`` (an admitted score; a path ranked before is replaced) and return
        the paths that fell out of the ``keep`` best."""
        entries = [e for e in self.entries if e["path"] != path]
        at = next((i for i, e in enumerate(entries) if better(score, e["score"], rule)), None)
        entries.insert(len(entries) if at is None else at, {"path": path, "score": score})
        self.entries = entries[: self.keep]
        return [e["path"] for e in entries[self.keep :]]

    def state_dict(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.entries]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """From EvalHook's state; a state saved before top-k holds only the single best."""
        if "best_ckpts" in state:
            self.entries = [
                {"path": str(e["path"]), "score": float(e["score"])} for e in state["best_ckpts"]
            ]
        elif state.get("best_ckpt") and state.get("best_score") is not None:
            self.entries = [{"path": state["best_ckpt"], "score": float(state["best_score"])}]
        else:
            self.entries = []


def ranking_saved_at(
    directory: str, suffix: str, iteration: int, state_key: str
) -> dict[str, Any] | None:
    """The EvalHook state recorded in a complete best checkpoint ``best_*<suffix>`` of
    ``directory`` written at train iteration ``iteration`` (module docstring), or None."""
    root = Path(directory)
    if not root.is_dir():
        return None
    for d in sorted(root.glob(f"best_*{suffix}")):
        try:
            manifest = verify_checkpoint(d, "size")
            if manifest.get("meta", {}).get("iter") != iteration:
                continue
            state_file = manifest["contents"].get("state")
            if not state_file:
                continue
            state = read_json(listed_file(d, manifest, state_file))
        except (CheckpointError, OSError, ValueError, KeyError):
            continue  # not a complete checkpoint: never adopted
        saved = (state.get("hooks") or {}).get(state_key)
        if isinstance(saved, dict) and "best_ckpts" in saved:
            return saved
    return None
