"""Checkpoints: pure I/O, one concern per module.

- :mod:`.format`: the directory format (manifest, ``FORMAT``/``VERSION``, strict JSON,
  :class:`Checkpoint`, :class:`CheckpointError`) and :func:`save_checkpoint`;
- :mod:`.atomic`: the atomic commit (staging/trash siblings, rename, directory fsync);
- :mod:`.writer`: the fast safetensors tensor writer;
- :mod:`.checksum`: the per-file digests a manifest records;
- :mod:`.schema`: the schemas of the JSON files, checked before use;
- :mod:`.reader`: verifying and reading checkpoint directories;
- :mod:`.workdir`: work-dir housekeeping (finding and listing checkpoints, the ``latest``
  pointer, safe deletion, cleanup after killed saves);
- :mod:`.tree`: nested state as JSON plus a flat tensor group;
- :mod:`.optimizer_state`: the optimizer state encoding;
- :mod:`.compat`: the resume compatibility check;
- :mod:`.weights`: weights-only loading (``load_from``, ``init_cfg``);
- :mod:`.faults`: test-only fault injection.
"""

from __future__ import annotations

from .compat import check_compatible
from .format import FORMAT, VERSION, Checkpoint, CheckpointError, save_checkpoint
from .optimizer_state import flatten_optimizer_state, unflatten_optimizer_state
from .reader import load_checkpoint, read_model_state, read_safetensors, verify_checkpoint
from .tree import join_tensors, split_tensors
from .workdir import (
    LATEST,
    clean_staging,
    find_latest,
    follow_latest,
    is_full_state,
    list_checkpoints,
    nonfinite_weights,
    prepare_work_dir,
    read_latest_pointer,
    remove_checkpoint,
    resume_candidates,
    update_latest_pointer,
)

__all__ = [
    "FORMAT",
    "LATEST",
    "VERSION",
    "Checkpoint",
    "CheckpointError",
    "check_compatible",
    "clean_staging",
    "find_latest",
    "follow_latest",
    "is_full_state",
    "flatten_optimizer_state",
    "join_tensors",
    "list_checkpoints",
    "nonfinite_weights",
    "load_checkpoint",
    "prepare_work_dir",
    "read_latest_pointer",
    "read_model_state",
    "read_safetensors",
    "remove_checkpoint",
    "resume_candidates",
    "save_checkpoint",
    "split_tensors",
    "unflatten_optimizer_state",
    "update_latest_pointer",
    "verify_checkpoint",
]
