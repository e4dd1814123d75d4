"""Golden call order: every stage of a small run, in order, with the counters hooks see.

A recording hook (registered through ``custom_hooks``, as users do) implements every
stage of :data:`acchooks.hooks.stages.STAGES` and records ``(stage, mode, epoch, iter,
inner_iter)`` at each call. The expected lists are written out literally: a change in
them is a change of the loop's behaviour, never a side effect of a refactor.

The counters follow mmcv: ``epoch`` counts completed train epochs and ``iter``
completed train iterations, both incremented after the ``after_*`` hooks (so a val
phase sees the epoch it follows as done); ``inner_iter`` is the index of the batch in
its epoch (in a val phase, of the val batch) and is left as it was until the next
batch sets it, so the ``before_*_epoch`` and ``after_run`` stages see the index of the
last batch that ran, whichever phase it belonged to.
"""

from __future__ import annotations

import pytest

from acchooks import HOOKS, Hook
from acchooks.hooks.stages import STAGES
from acchooks.testing import run_config, tiny_config


@HOOKS.register_module(force=True)
class StageRecorder(Hook):
    """Records ``(stage, mode, epoch, iter, inner_iter)`` at every stage (methods below)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, int, int]] = []


def _recorder(stage: str):
    def record(self, runner) -> None:
        self.calls.append((stage, runner.mode, runner.epoch, runner.iter, runner.inner_iter))

    record.__name__ = stage
    return record


for _stage in STAGES:  # every stage, so a new stage shows up in the golden lists
    setattr(StageRecorder, _stage, _recorder(_stage))


def recorded(runner) -> list[tuple[str, str, int, int, int]]:
    (hook,) = [h for h in runner.hooks.hooks if isinstance(h, StageRecorder)]
    return hook.calls


# 8 samples per batch: 24 train samples are 3 batches, 16 val samples 2
DATA = dict(train=dict(num_samples=24), val=dict(num_samples=16))
NO_PROGRESS = dict(enable=False)  # a progress bar on a terminal would add a hook

# (a) EpochBasedRunner, 2 epochs, workflow [('train', 1), ('val', 1)]
EPOCH_BASED = [
    ("before_run", "train", 0, 0, 0),
    # train epoch 1
    ("before_train_epoch", "train", 0, 0, 0),
    ("before_train_iter", "train", 0, 0, 0),
    ("before_train_forward", "train", 0, 0, 0),
    ("after_train_iter", "train", 0, 0, 0),
    ("before_train_iter", "train", 0, 1, 1),
    ("before_train_forward", "train", 0, 1, 1),
    ("after_train_iter", "train", 0, 1, 1),
    ("before_train_iter", "train", 0, 2, 2),
    ("before_train_forward", "train", 0, 2, 2),
    ("after_train_iter", "train", 0, 2, 2),
    ("after_train_epoch", "train", 0, 3, 2),
    # val phase after epoch 1: the epoch counter has moved on
    ("before_val_epoch", "val", 1, 3, 2),
    ("before_val_iter", "val", 1, 3, 0),
    ("after_val_iter", "val", 1, 3, 0),
    ("before_val_iter", "val", 1, 3, 1),
    ("after_val_iter", "val", 1, 3, 1),
    ("after_val_epoch", "val", 1, 3, 1),
    # train epoch 2 (inner_iter still the last val batch's index until the first batch)
    ("before_train_epoch", "train", 1, 3, 1),
    ("before_train_iter", "train", 1, 3, 0),
    ("before_train_forward", "train", 1, 3, 0),
    ("after_train_iter", "train", 1, 3, 0),
    ("before_train_iter", "train", 1, 4, 1),
    ("before_train_forward", "train", 1, 4, 1),
    ("after_train_iter", "train", 1, 4, 1),
    ("before_train_iter", "train", 1, 5, 2),
    ("before_train_forward", "train", 1, 5, 2),
    ("after_train_iter", "train", 1, 5, 2),
    ("after_train_epoch", "train", 1, 6, 2),
    # the workflow's val phase also runs after the last train epoch (as in mmcv)
    ("before_val_epoch", "val", 2, 6, 2),
    ("before_val_iter", "val", 2, 6, 0),
    ("after_val_iter", "val", 2, 6, 0),
    ("before_val_iter", "val", 2, 6, 1),
    ("after_val_iter", "val", 2, 6, 1),
    ("after_val_epoch", "val", 2, 6, 1),
    # the val phase hands the mode back to 'train'
    ("after_run", "train", 2, 6, 1),
]

# (b) IterBasedRunner, max_iters=5, workflow [('train', 2), ('val', 1)], 3 train batches
# per pass over the data: the second pass (epoch 1) starts at iteration 3, inside a train
# chunk. As in mmcv, before/after_train_epoch run once, around the whole run; a val
# phase runs ``n`` = 1 val batches (here with its own before/after_val_epoch).
ITER_BASED = [
    ("before_run", "train", 0, 0, 0),
    ("before_train_epoch", "train", 0, 0, 0),
    ("before_train_iter", "train", 0, 0, 0),
    ("before_train_forward", "train", 0, 0, 0),
    ("after_train_iter", "train", 0, 0, 0),
    ("before_train_iter", "train", 0, 1, 1),
    ("before_train_forward", "train", 0, 1, 1),
    ("after_train_iter", "train", 0, 1, 1),
    ("before_val_epoch", "val", 0, 2, 1),
    ("before_val_iter", "val", 0, 2, 0),
    ("after_val_iter", "val", 0, 2, 0),
    ("after_val_epoch", "val", 0, 2, 0),
    ("before_train_iter", "train", 0, 2, 2),
    ("before_train_forward", "train", 0, 2, 2),
    ("after_train_iter", "train", 0, 2, 2),
    # the data ran out: a new pass, epoch 1, from its first batch
    ("before_train_iter", "train", 1, 3, 0),
    ("before_train_forward", "train", 1, 3, 0),
    ("after_train_iter", "train", 1, 3, 0),
    ("before_val_epoch", "val", 1, 4, 0),
    ("before_val_iter", "val", 1, 4, 0),
    ("after_val_iter", "val", 1, 4, 0),
    ("after_val_epoch", "val", 1, 4, 0),
    ("before_train_iter", "train", 1, 4, 1),
    ("before_train_forward", "train", 1, 4, 1),
    ("after_train_iter", "train", 1, 4, 1),
    # max_iters reached inside the chunk; the workflow's val phase still runs
    ("before_val_epoch", "val", 1, 5, 1),
    ("before_val_iter", "val", 1, 5, 0),
    ("after_val_iter", "val", 1, 5, 0),
    ("after_val_epoch", "val", 1, 5, 0),
    # inner_iter is the val batch's index here, not the train position (1)
    ("after_train_epoch", "train", 1, 5, 0),
    ("after_run", "train", 1, 5, 0),
]


def test_recorder_implements_every_stage():
    assert all(StageRecorder.implements(s) for s in STAGES)


@pytest.fixture(scope="module")
def epoch_run(tmp_path_factory):
    """(a), with every default hook at ``after_train_iter`` and a HIGH custom hook."""
    work = tmp_path_factory.mktemp("epochs")
    cfg = tiny_config(
        work,
        data=DATA,
        workflow=[("train", 1), ("val", 1)],
        runner=dict(max_epochs=2),
        checkpoint_config=dict(interval=1),
        evaluation=dict(interval=1),
        log_config=dict(
            interval=1, hooks=[dict(type="TextLoggerHook"), dict(type="TensorboardLoggerHook")]
        ),
        progress_config=NO_PROGRESS,
        # the tutorial's custom hook, then the recorder (NORMAL, after the defaults)
        custom_hooks=[dict(type="EMAHook", priority="HIGH"), dict(type="StageRecorder")],
    )
    return run_config(cfg), work


def test_epoch_based_stage_order(epoch_run):
    runner, _ = epoch_run
    assert recorded(runner) == EPOCH_BASED
    assert (runner.epoch, runner.iter, runner.step) == (2, 6, 6)


def test_iter_based_stage_order(tmp_path):
    cfg = tiny_config(
        tmp_path,
        data=DATA,
        workflow=[("train", 2), ("val", 1)],
        runner=dict(_delete_=True, type="IterBasedRunner", max_iters=5),
        progress_config=NO_PROGRESS,
        custom_hooks=[dict(type="StageRecorder")],
    )
    runner = run_config(cfg)
    assert recorded(runner) == ITER_BASED
    assert (runner.epoch, runner.iter, runner.step) == (1, 5, 5)


# after_train_iter, in run order: a HIGH custom hook sees the loss before the
# OptimizerHook's backward and step; everything below it sees the updated weights; equal
# priorities keep registration order (defaults first, then custom_hooks)
AFTER_TRAIN_ITER = [
    ("HIGH", "EMAHook"),
    ("ABOVE_NORMAL", "OptimizerHook"),
    ("NORMAL", "CheckpointHook"),
    ("NORMAL", "StageRecorder"),
    ("LOW", "IterTimerHook"),
    ("LOW", "EvalHook"),
    ("VERY_LOW", "TextLoggerHook"),
    ("VERY_LOW", "TensorboardLoggerHook"),
]


def _table_section(text: str, stage: str) -> list[tuple[str, str]]:
    """The ``(priority, hook)`` rows the startup table lists under ``stage``."""
    lines = text.split("Hooks will be executed in the following order:", 1)[1].splitlines()
    start = lines.index(f"{stage}:")
    rows = []
    for line in lines[start + 3 :]:  # after "(priority) hook" and the first rule
        if not line.startswith("("):
            break
        priority, hook = line[1:].split(")", 1)
        rows.append((priority.strip(), hook.strip()))
    return rows


def test_default_hook_order_at_after_train_iter(epoch_run):
    runner, work = epoch_run
    (log,) = work.glob("*.log")
    assert _table_section(log.read_text(), "after_train_iter") == AFTER_TRAIN_ITER
    implementers = [h for h in runner.hooks.hooks if type(h).implements("after_train_iter")]
    assert [type(h).__name__ for h in implementers] == [n for _, n in AFTER_TRAIN_ITER]
