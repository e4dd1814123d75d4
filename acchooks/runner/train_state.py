"""TrainState: where a run is, as counters that each mean one thing at every moment.

Two kinds of counters, each advanced at exactly one point of the loop:

* **Positions** (mmcv's ``runner.epoch``/``runner.iter``/``runner.inner_iter``, what hooks
  read): the index of the epoch, train iteration and batch being run. ``epoch`` and
  ``iter`` move on only after the ``after_*`` hooks of that epoch/iteration ran, so a hook
  written for mmcv (``(runner.iter + 1) % n``) means what it meant there.
* **Progress** (what a checkpoint records, what a resumed run starts from): work done.
  A train batch is done once the train step returned (``finish_batch``), just before the
  ``after_train_iter`` hooks, where the OptimizerHook steps and the CheckpointHook saves;
  an epoch is done once its last batch is (``finish_epoch``), before
  ``after_train_epoch``. ``batches_done`` is the number of batches of the *current* epoch
  already done: 0 when an epoch starts fresh, ``k`` when a run resumes after batch ``k``;
  the runner skips that many batches when it starts the epoch.

``steps`` counts optimizer steps that really happened (not accumulation micro-steps, not
steps skipped for an fp16 overflow or a non-finite gradient): the OptimizerHook reports
each one with :meth:`count_step`; the schedules follow it.

The loop, with the points where each counter moves::

    for each train epoch:                      start_epoch()
        for each batch i (after the skipped):  start_iter(i)        inner_iter = i
            before_train_iter hooks
            train step                         finish_batch(n)      iters_done, batches_done,
                                                                    samples += ...
            after_train_iter hooks (OptimizerHook: count_step())    steps += 1
                                               end_iter()           iter = iters_done
        (last batch done)                      finish_epoch()       epochs_done += 1,
                                                                    batches_done = 0
        after_train_epoch hooks
                                               end_epoch()          epoch = epochs_done
"""

from __future__ import annotations

from typing import Any


class TrainState:
    """The training counters of one run: positions for hooks, progress for checkpoints
    (see the module docstring); ``state_dict``/``load_state_dict`` are the progress."""

    __slots__ = (
        "epoch",
        "iter",
        "inner_iter",
        "epochs_done",
        "iters_done",
        "batches_done",
        "steps",
        "samples",
    )

    def __init__(self) -> None:
        self.epoch = self.iter = self.inner_iter = 0
        self.epochs_done = self.iters_done = self.batches_done = 0
        self.steps = self.samples = 0

    # ---------------------------------------------------------------- the loop's points
    def start_iter(self, inner_iter: int) -> None:
        self.inner_iter = inner_iter

    def finish_batch(self, samples: int) -> None:
        """The current train batch went through the train step (``samples``: global)."""
        self.iters_done += 1
        self.batches_done += 1
        self.samples += samples

    def end_iter(self) -> None:
        self.iter = self.iters_done

    def finish_epoch(self) -> None:
        """Every batch of the current train epoch is done."""
        self.epochs_done += 1
        self.batches_done = 0

    def end_epoch(self) -> None:
        self.epoch = self.epochs_done

    def count_step(self) -> None:
        """An optimizer step really happened (the OptimizerHook reports it)."""
        self.steps += 1

    def restart_epoch(self) -> None:
        """Run the current epoch from its first batch (a dry run cannot skip batches)."""
        self.batches_done = 0

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, int]:
        """The progress, under the names checkpoints have always used."""
        return {
            "epoch": self.epochs_done,
            "iter": self.iters_done,
            "inner_iter": self.batches_done,
            "step": self.steps,
            "samples": self.samples,
        }

    @staticmethod
    def check_state_dict(state: Any) -> str | None:
        """What is wrong with a saved :meth:`state_dict` (the field, what it should be, what
        it is), or None; checked before a resume touches anything."""
        if state is None:
            return "field 'counters' is missing"
        if not isinstance(state, dict):
            return f"field 'counters' should be a mapping, found {type(state).__name__}"
        for k in ("epoch", "iter", "inner_iter", "step", "samples"):
            v = state.get(k, 0 if k == "samples" else None)  # older checkpoints: no samples
            if type(v) is not int or v < 0:
                return f"field 'counters.{k}' should be a non-negative int, found {v!r}"
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = self.epochs_done = int(state["epoch"])
        self.iter = self.iters_done = int(state["iter"])
        self.inner_iter = self.batches_done = int(state["inner_iter"])
        self.steps = int(state["step"])
        self.samples = int(state.get("samples", 0))  # older checkpoints did not count them

    def rebatch(self, old_global_batch: int, new_global_batch: int) -> int | None:
        """A resume with another global batch: the batches of the current epoch done so far,
        re-expressed in the new batch size. Returns the number of samples that could not be
        expressed (skipped too), or None when they divide evenly."""
        consumed = self.batches_done * old_global_batch
        self.batches_done = consumed // new_global_batch
        return consumed if consumed % new_global_batch else None

    def __repr__(self) -> str:
        return f"TrainState({', '.join(f'{k}={getattr(self, k)}' for k in self.__slots__)})"


class TrainStateViews:
    """mmcv's runner attributes ``epoch``, ``iter``, ``inner_iter`` and ``step`` as
    read-only views of ``self.state`` (a mixin of the Runner)."""

    state: TrainState

    @property
    def epoch(self) -> int:
        """Index of the current train epoch (= train epochs completed before it)."""
        return self.state.epoch

    @property
    def iter(self) -> int:
        """Index of the current train iteration (= completed before it), as in mmcv."""
        return self.state.iter

    @property
    def inner_iter(self) -> int:
        """Index of the current batch within its epoch."""
        return self.state.inner_iter

    @property
    def step(self) -> int:
        """Optimizer steps that really happened (what the schedules follow)."""
        return self.state.steps
