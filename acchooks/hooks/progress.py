"""ProgressBarHook: a tqdm progress bar on the main process, or plain progress lines.

Registered by default (``progress_config``; ``train.py --no-progress`` or
``progress_config=dict(enable=False)`` turns it off). What it shows depends on ``mode``:

* ``'bar'``: one bar per train epoch (one for the whole run with ``IterBasedRunner``),
  ``Epoch 2/6:  45%|####5     | 14/32 [00:03<00:04, 4.21it/s, loss=0.1234, eta=0:01:10]``:
  epoch, iterations, the epoch's elapsed/remaining time, it/s, the current loss and the
  whole run's ETA (evaluation included); a transient bar for ``val`` workflow phases and
  one (``Eval``) for the EvalHook's evaluations.
  Log lines are printed above the bar (see :mod:`acchooks.logging.logger`).
* ``'lines'``: no redraws; a line ``Epoch [2/6][14/32] 44% | 4.21 it/s | eta 0:01:10 |
  loss 0.1234`` every ``interval`` iterations (``0``: every ``every_s`` seconds) and at
  the end of each epoch, through the logger (so also into the ``.log`` file).
* ``'auto'`` (default): a bar when the bar's stream (stderr) is a terminal. Otherwise
  (CI, SLURM, ``| tee``) redraws would litter the log, so: lines if no TextLoggerHook is
  configured, and nothing if one is, since its lines already carry epoch, iteration, eta,
  time, samples/s and the loss.

Only the main process shows progress: the runner registers the hook there only, and
not at all when it would show nothing, so it costs nothing where it is off.

The bar reads the loss (a device sync on GPUs) at most every ``refresh_s`` seconds.
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..registry import HOOKS
from .hook import Hook
from .options import PROGRESS_CONFIG
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


def _fmt_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """``progress_config=dict(mode='auto')``: a tqdm bar on a terminal, plain progress lines
    elsewhere (none when a TextLoggerHook already prints them); main process only."""

    priority = Priority.VERY_LOW

    def __init__(
        self,
        mode: str = "auto",
        interval: int = 0,
        every_s: float = 10.0,
        refresh_s: float = 0.2,
        leave: bool = True,
    ):
        args = dict(mode=mode, interval=interval, every_s=every_s, refresh_s=refresh_s, leave=leave)
        PROGRESS_CONFIG.check(args)  # ConfigError: progress_config.mode: expected one of ...
        self.mode, self.interval = mode, interval
        self.every_s, self.refresh_s, self.leave = float(every_s), float(refresh_s), leave
        self._bar: Any = None
        self._val_bar: Any = None

    # ---------------------------------------------------------------- mode
    def resolve_mode(self, text_logger: bool, stream=None) -> str:
        """'bar', 'lines' or 'off' for this process' console (see the module doc)."""
        if self.mode != "auto":
            return self.mode
        stream = stream if stream is not None else sys.stderr
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        if tty:
            return "bar"
        return "off" if text_logger else "lines"

    def setup(self, text_logger: bool) -> str:
        self.active = self.resolve_mode(text_logger)
        return self.active

    # ---------------------------------------------------------------- helpers
    def _eta(self, runner: Runner, now: float) -> str:
        done = runner.iter + 1 - self._start_iter
        if done <= 0:
            return "?"
        return _fmt_eta((now - self._t0) / done * (runner.max_iters - runner.iter - 1))

    @staticmethod
    def _loss(runner: Runner) -> str | None:
        loss = (runner.outputs or {}).get("log_vars", {}).get("loss")
        if loss is None:
            return None
        try:
            return f"{float(loss):.4f}"
        except (TypeError, ValueError, RuntimeError):
            return None

    def _open_bar(self, runner: Runner, total: int | None, initial: int, desc: str, leave: bool):
        from tqdm import tqdm

        from ..logging.logger import progress_bar_opened

        bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            leave=leave,
            file=sys.stderr,
            mininterval=self.refresh_s,
            dynamic_ncols=True,
            unit="it",
        )
        progress_bar_opened()
        return bar

    @staticmethod
    def _close(bar) -> None:
        if bar is None:
            return
        from ..logging.logger import progress_bar_closed

        bar.close()
        progress_bar_closed()

    # ---------------------------------------------------------------- stages
    def before_run(self, runner: Runner) -> None:
        if not runner.is_main_process:
            self.active = "off"
        elif not hasattr(self, "active"):  # registered by hand, not by build_runner
            from .logger.text import TextLoggerHook

            self.setup(any(isinstance(h, TextLoggerHook) for h in runner.hooks.hooks))
        self._t0 = self._line_t = time.perf_counter()
        self._start_iter = runner.iter
        self._post_t = 0.0

    def before_train_epoch(self, runner: Runner) -> None:
        self._epoch_t0 = time.perf_counter()
        self._epoch_start = runner.state.batches_done if runner.by_epoch else runner.iter
        if self.active != "bar":
            return
        if runner.by_epoch:
            self._close(self._bar)
            self._bar = self._open_bar(
                runner,
                runner.epoch_length,
                runner.state.batches_done,
                f"Epoch {runner.epoch + 1}/{runner.max_epochs}",
                self.leave,
            )
        elif self._bar is None:  # iteration-based: one bar for the whole run
            self._bar = self._open_bar(runner, runner.max_iters, runner.iter, "Iter", self.leave)

    def after_train_iter(self, runner: Runner) -> None:
        now = time.perf_counter()
        if self.active == "bar":
            bar = self._bar
            if bar is None:
                return
            if now - self._post_t >= self.refresh_s:
                self._post_t = now
                post = {}
                loss = self._loss(runner)
                if loss is not None:
                    post["loss"] = loss
                post["eta"] = self._eta(runner, now)
                bar.set_postfix(post, refresh=False)
            bar.update(1)
            if runner.by_epoch and runner.inner_iter + 1 >= runner.epoch_length:
                self._close(bar)  # before evaluation starts logging
                self._bar = None
        elif self.active == "lines":
            end = runner.by_epoch and runner.inner_iter + 1 >= runner.epoch_length
            n = runner.inner_iter + 1 if runner.by_epoch else runner.iter + 1
            due = n % self.interval == 0 if self.interval else now - self._line_t >= self.every_s
            if due or end or (not runner.by_epoch and runner.iter + 1 >= runner.max_iters):
                self._line_t = now
                runner.logger.info(self.format_line(runner, now))

    def format_line(self, runner: Runner, now: float) -> str:
        if runner.by_epoch:
            n, total = runner.inner_iter + 1, runner.epoch_length
            head = f"Epoch [{runner.epoch + 1}/{runner.max_epochs}][{n}/{total}]"
        else:
            n, total = runner.iter + 1, runner.max_iters
            head = f"Iter [{n}/{total}]"
        elapsed = max(now - self._epoch_t0, 1e-9)
        rate = (n - self._epoch_start) / elapsed
        parts = [
            f"{head} {100 * n / max(total, 1):.0f}%",
            f"{rate:.2f} it/s",
            f"eta {self._eta(runner, now)}",
        ]
        loss = self._loss(runner)
        if loss is not None:
            parts.append(f"loss {loss}")
        return " | ".join(parts)

    def after_train_epoch(self, runner: Runner) -> None:
        if runner.by_epoch:
            self._close(self._bar)
            self._bar = None

    def before_val_epoch(self, runner: Runner) -> None:
        if self.active != "bar":
            return
        total = len(runner.data_loader) if runner.by_epoch else None
        self._val_bar = self._open_bar(runner, total, 0, "Val", leave=False)

    def after_val_iter(self, runner: Runner) -> None:
        if self._val_bar is not None:
            self._val_bar.update(1)

    def after_val_epoch(self, runner: Runner) -> None:
        self._close(self._val_bar)
        self._val_bar = None

    @contextmanager
    def evaluation_progress(
        self, runner: Runner, total: int
    ) -> Iterator[Callable[[], None] | None]:
        """A transient ``Eval`` bar over EvalHook's ``total`` batches (bar mode only);
        yields the per-batch callback, or None."""
        if self.active != "bar":
            yield None
            return
        bar = self._open_bar(runner, total, 0, "Eval", leave=False)
        try:
            yield lambda: bar.update(1)
        finally:
            self._close(bar)

    def after_run(self, runner: Runner) -> None:
        self._close(self._bar)
        self._close(self._val_bar)
        self._bar = self._val_bar = None
