"""RunLength: how long a run is, in epochs, iterations and optimizer steps.

``max_epochs`` (epoch-based) or ``max_iters`` (iteration-based) is what the config
gives; the rest follows from the train loader's length and Accelerate's gradient
accumulation. Hooks ask these every iteration, so the loader's ``len()`` is cached.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class RunLength:
    """The run-length part of the Runner (a mixin: it reads ``by_epoch``, ``max_epochs``,
    ``_max_iters``, ``data_loaders`` and ``accelerator`` from it)."""

    by_epoch: bool
    max_epochs: int | None
    _max_iters: int | None
    _length_of: Iterable | None = None
    _length: int = 0
    stop_reason: str | None = None  # set by request_stop: the run ends early

    @property
    def epoch_length(self) -> int:
        """Iterations in one epoch of the train loader (len() of a prepared loader is not
        free, and hooks ask every iteration)."""
        loader = self.data_loaders["train"]
        if self._length_of is not loader:
            self._length, self._length_of = len(loader), loader
        return self._length

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.epoch_length / self.accelerator.gradient_accumulation_steps)

    @property
    def max_iters(self) -> int:
        return self._max_iters if not self.by_epoch else self.max_epochs * self.epoch_length

    @property
    def max_steps(self) -> int:
        if self.by_epoch:
            return self.max_epochs * self.steps_per_epoch
        return math.ceil(self._max_iters / self.accelerator.gradient_accumulation_steps)

    def set_length(self, *, max_epochs: int | None = None, max_iters: int | None = None) -> None:
        """Change how long the run goes on: ``max_epochs`` for an epoch-based runner,
        ``max_iters`` for an iteration-based one."""
        if self.by_epoch and max_epochs is not None and max_iters is None:
            self.max_epochs = max_epochs
        elif not self.by_epoch and max_iters is not None and max_epochs is None:
            self._max_iters = max_iters
        else:
            kind = "max_epochs" if self.by_epoch else "max_iters"
            raise ValueError(f"this {type(self).__name__} runs for {kind}; give only {kind}")

    def request_stop(self, reason: str) -> None:
        """End the run after the current train epoch (iteration for an iteration-based
        runner) as if its length had been reached: ``after_train_epoch`` and ``after_run``
        run as usual and :meth:`Hook.is_last_epoch` / ``is_last_iter`` answer True from now
        on. Call it on every process with the same decision (EarlyStoppingHook decides from
        gathered metrics). The first reason is kept."""
        if self.stop_reason is None:
            self.stop_reason = reason

    @property
    def stopping(self) -> bool:
        """Whether :meth:`request_stop` was called: the current epoch/iteration is the last."""
        return self.stop_reason is not None
