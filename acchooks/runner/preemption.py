"""Preemption: a signal only sets a flag; the processes agree at an iteration boundary.

SIGTERM and SIGUSR1 (what SLURM sends before a time limit or a requeue) set a flag in
the handler and nothing else, so a signal can never interrupt a collective or a file
write half way. After each train iteration the runner asks :meth:`requested`: in a
multi-process run the flags are combined with an all-reduce (MAX) that runs in the
background during the next iteration, so every process stops at the same iteration (the
one after the signal) even when only one of them was signalled. The runner then
writes one checkpoint and the CLI exits with :data:`EXIT_PREEMPTED`.

Who receives what: ``accelerate launch`` and ``torchrun`` forward SIGTERM (and INT, HUP)
to the trainer processes; ``accelerate launch`` itself dies on SIGUSR1. A trainer whose
launcher is gone stops at the next iteration boundary as if signalled
(:data:`~acchooks.signals.PARENT_EXITED`). A signal that arrives before the loop (imports,
config check, build, resume load) is held by :mod:`acchooks.signals`: the CLI asks
:func:`signalled_before_run` and exits 75 without saving anything new.

Every trainer process exits with 75. A launcher (``torchrun``, ``accelerate launch``)
turns any non-zero exit of its workers into its own status 1, so the main process also
writes ``<work_dir>/preempted.json`` (signal, checkpoint, iteration); a run that
finishes removes it. A requeue script checks for 75 or for that file.
"""

from __future__ import annotations

import signal

import torch

from .. import signals as early
from ..signals import EXIT_PREEMPTED, MARKER, SIGNALS

__all__ = ["EXIT_PREEMPTED", "MARKER", "Preempted", "PreemptionHandler", "signalled_before_run"]


class Preempted(Exception):
    """Raised by the runner after the preemption checkpoint has been written."""

    def __init__(self, signal_name: str, checkpoint: str):
        super().__init__(f"stopped by {signal_name}; checkpoint {checkpoint}")
        self.signal_name, self.checkpoint = signal_name, checkpoint


class PreemptionHandler:
    """Turns SIGTERM/SIGUSR1 into a flag, and :meth:`requested` into one agreed answer across


    processes at an iteration boundary (see the module docstring)."""

    def __init__(self, signals: tuple[str, ...] = SIGNALS):
        self.signals = [getattr(signal, s) for s in signals if hasattr(signal, s)]
        self.received: int = 0
        self._previous: dict[int, object] = {}
        self._group = None  # a gloo group for the flag: CPU tensors, no device sync
        self._pending = None  # (work, flag) of the all-reduce started after the last iteration

    def install(self) -> None:
        self.received = self.received or early.received()  # one from before the loop
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): no handler
                pass

    def uninstall(self) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()
        if self._pending is not None:  # every process started it: finish it everywhere
            self._pending[0].wait()
            self._pending = None

    def _handle(self, signum, frame) -> None:
        self.received = self.received or signum  # only a flag: safe at any point

    def requested(self, accelerator) -> int:
        """The signal number any process received (0 if none); a collective.

        With several processes the flags are all-reduced (MAX) asynchronously, over a gloo
        group on CPU tensors: the reduction started after iteration i is read after
        iteration i + 1, by every process, so all stop after the same iteration (one later
        than the signal) and the loop never waits for it or synchronizes the GPU (a
        blocking reduce plus ``.item()`` every iteration would)."""
        if not self.received:  # the launcher gone counts as a signal (a cheap getppid)
            self.received = early.received()
        if accelerator.num_processes == 1:
            return self.received
        import torch.distributed as dist

        if not dist.is_initialized():  # a backend that is not torch.distributed
            flag = torch.tensor([self.received], dtype=torch.int64, device=accelerator.device)
            return int(accelerator.reduce(flag, "max").item())
        if self._group is None:  # the first call: every process is at the same iteration
            self._group = dist.new_group(backend="gloo")
        agreed = 0
        if self._pending is not None:
            work, flag = self._pending
            work.wait()
            agreed = int(flag[0])
        flag = torch.tensor([self.received], dtype=torch.int64)
        self._pending = (
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True),
            flag,
        )
        return agreed


def signalled_before_run(accelerator) -> int:
    """What :mod:`acchooks.signals` received before the loop, on any process (a blocking
    collective: every process calls it at the same point, once); 0 if nothing."""
    flag = early.received()
    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor([flag], dtype=torch.int64, device=accelerator.device)
    return int(accelerator.reduce(t, "max").item())


def stop_for_preemption(runner, signum: int) -> None:
    """Save ``iter_<N>`` through the runner's Checkpointer, write :data:`MARKER` (main
    process) and raise :class:`Preempted`. Called between two train iterations."""
    name = early.name(signum)
    state = runner.state
    runner.logger.warning(
        f"{early.describe(signum)}: saving a checkpoint at iteration {state.iters_done} "
        f"(epoch {state.epoch + 1}, batch {state.batches_done}) and stopping"
    )
    # synchronous, after the save in flight (if any): committed before the marker names it
    path = runner.checkpointer.save(f"iter_{state.iters_done}", background=False)
    if runner.is_main_process:
        record = {"signal": name, "checkpoint": path, "epoch": state.epoch}
        record.update(iter=state.iters_done, step=state.steps)
        early.write_marker(runner.work_dir, record)
    raise Preempted(name, path)
