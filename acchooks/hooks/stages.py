"""The stage vocabulary: every point of the loop where hooks run, in one place.

The loop, as the runner executes it::

    before_run
    for each workflow phase (train / val):
        before_{phase}_epoch
        for each batch:
            before_{phase}_iter
            (train: before_train_forward, where hooks may replace ``runner.data_batch``;
             forward; the OptimizerHook does backward + step in after_train_iter)
            (val:   forward under no_grad, loss only)
            after_{phase}_iter
        after_{phase}_epoch
    after_run

The phase-specific stages fall back to the generic ``before_epoch``/``after_epoch``/
``before_iter``/``after_iter``, so a hook written as in the MMCV tutorial (only the
generic methods) runs in both train and val phases. ``before_train_forward`` has no
fallback: only a hook written to transform the train batch runs there.
"""

from __future__ import annotations

STAGES: tuple[str, ...] = (
    "before_run",
    "before_train_epoch",
    "before_train_iter",
    "before_train_forward",
    "after_train_iter",
    "after_train_epoch",
    "before_val_epoch",
    "before_val_iter",
    "after_val_iter",
    "after_val_epoch",
    "after_run",
)

# stage -> the generic method it falls back to
FALLBACKS: dict[str, str] = {
    "before_train_epoch": "before_epoch",
    "before_val_epoch": "before_epoch",
    "after_train_epoch": "after_epoch",
    "after_val_epoch": "after_epoch",
    "before_train_iter": "before_iter",
    "before_val_iter": "before_iter",
    "after_train_iter": "after_iter",
    "after_val_iter": "after_iter",
}

GENERIC: tuple[str, ...] = ("before_epoch", "after_epoch", "before_iter", "after_iter")

# every method name a Hook subclass may define that starts with before_/after_
HOOK_METHODS: frozenset[str] = frozenset(STAGES) | frozenset(GENERIC)
