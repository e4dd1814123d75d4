"""The preemption flag, from the first instant of a train process (stdlib only).

``train.py`` and ``acchooks train`` call :func:`install` before anything heavy is
imported, so SIGTERM or SIGUSR1 during the imports, the config check, the build or the
resume load only sets a flag: the CLI asks :func:`received` before and after the build
and exits with :data:`EXIT_PREEMPTED` without saving anything, and once the loop runs the
runner's :class:`~acchooks.runner.preemption.PreemptionHandler` takes the flag over and
stops at the next iteration boundary with a checkpoint.

A trainer started by a launcher (``accelerate launch``, ``torchrun``) also stops when the
launcher is gone (``accelerate launch`` dies on SIGUSR1 and would leave its trainers
training on, orphaned): :func:`received` then answers :data:`PARENT_EXITED`.

The exit status, the marker file (``<work_dir>/preempted.json``, for launchers that turn a
worker's 75 into 1) and the flag live here, apart from the torch side of preemption, so
that the CLI can use them before torch is imported.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import signal

EXIT_PREEMPTED = 75  # sysexits' EX_TEMPFAIL: "try again later" - requeue and --resume auto
MARKER = "preempted.json"
SIGNALS = ("SIGTERM", "SIGUSR1")
PARENT_EXITED = 1000  # not a signal number: the launcher that started this process is gone
# set by torch elastic (torchrun, multi-process `accelerate launch`) and by Accelerate's
# one-process launcher in the processes they start
_LAUNCHED_BY = ("TORCHELASTIC_RUN_ID", "ACCELERATE_DYNAMO_BACKEND")

_received = 0
_parent: int | None = None  # the launcher's pid when started by one, watched by received()


def _handle(signum: int, frame: object) -> None:
    global _received
    _received = _received or signum  # only a flag: safe at any point


def install() -> None:
    """Install the flag handlers (idempotent; nothing outside the main thread) and note
    the launcher, if this process was started by one."""
    global _parent
    for name in SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None or signal.getsignal(sig) is _handle:
            continue
        try:
            signal.signal(sig, _handle)
        except ValueError:  # not the main thread: leave the signals alone
            return
    if _parent is None and any(k in os.environ for k in _LAUNCHED_BY):
        _parent = os.getppid()


def received() -> int:
    """The first signal received since :func:`install`, :data:`PARENT_EXITED` if the
    launcher has gone, else 0."""
    if not _received and _parent is not None and os.getppid() != _parent:
        return PARENT_EXITED
    return _received


def name(signum: int) -> str:
    """``'SIGTERM'``, ``'SIGUSR1'``, or ``'PARENT_EXITED'`` for :data:`PARENT_EXITED`."""
    if signum == PARENT_EXITED:
        return "PARENT_EXITED"
    return signal.Signals(signum).name


def describe(signum: int) -> str:
    """What happened, for a log line."""
    if signum == PARENT_EXITED:
        return f"the launcher that started this process (pid {_parent}) has exited"
    return f"{name(signum)} received"


def write_marker(work_dir: str, record: dict) -> None:
    """``<work_dir>/preempted.json``: why the run stopped and where it can resume."""
    with open(osp.join(work_dir, MARKER), "w") as f:
        json.dump(record, f)
