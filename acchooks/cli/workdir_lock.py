"""One run per work dir: an exclusive ``flock`` on ``<work_dir>/.acchooks.lock``.

The main process of a training run takes the lock after the config check and holds it
for the life of the process; the OS releases it when the process ends in any way
(``kill -9`` included), so a stale file never blocks a requeued job. The file says who
holds it (pid, host, start time) for the message a second run prints. With several
processes, only the main process locks (:func:`lock_for_run`); the others learn the
outcome from :func:`agree`, which :func:`~acchooks.runner.build_runner` calls as soon as
the process group exists (before the model, the data or the resume).

Imports nothing heavy (the CLI uses it before torch is imported). File systems without
``flock`` (some network mounts) run unlocked, with a warning.
"""

from __future__ import annotations

import errno
import json
import os
import os.path as osp
import socket
import time

from ..errors import ConfigError

LOCK_FILE = ".acchooks.lock"
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class WorkDirBusy(ConfigError):
    """Another run holds the work dir's lock."""


class WorkDirLock:
    """The lock of one work dir; :meth:`acquire` once, :meth:`release` (or exit) ends it."""

    def __init__(self, work_dir: str) -> None:
        self.work_dir = osp.abspath(work_dir)
        self.path = osp.join(self.work_dir, LOCK_FILE)
        self._fd: int | None = None
        self.warning: str | None = None  # set when the file system cannot lock
        self.refusal: str | None = None  # the message when another run holds it

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock without waiting; False (and :attr:`refusal`) if another run has
        it. Raises ConfigError if the work dir cannot be created or written."""
        import fcntl

        try:
            os.makedirs(self.work_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ConfigError(
                f"work_dir {self.work_dir}: cannot create {LOCK_FILE} there ({e.strerror}); "
                "use a writable --work-dir"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                self.refusal = self._busy_message(fd)
                os.close(fd)
                return False
            if e.errno in _UNSUPPORTED:
                os.close(fd)
                self.warning = (
                    f"work_dir {self.work_dir}: the file system cannot lock files "
                    f"({e.strerror}): nothing stops a second run from using this work dir"
                )
                return True
            raise
        self._fd = fd
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode() + b"\n", 0)
        os.register_at_fork(after_in_child=self._close_in_child)
        return True

    def _close_in_child(self) -> None:
        # a forked child (a DataLoader worker) must not keep the lock's file open: closing
        # its copy does not unlock, and once the run's process dies the lock is free
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _busy_message(self, fd: int) -> str:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            holder = {}
        who = (
            f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')}"
        )
        return (
            f"work_dir {self.work_dir} is in use by another run ({who}; lock file "
            f"{self.path}); wait for that run to end or stop it, or give this one "
            "another --work-dir"
        )

    def release(self) -> None:
        """Unlock now (the end of the process does it too)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


_refusal: str | None = None  # this process's outcome, until agree() has shared it


def lock_for_run(work_dir: str, main_process: bool) -> WorkDirLock | None:
    """The main process takes the work dir's lock (the others None); see :func:`agree`."""
    global _refusal
    _refusal = None
    if not main_process:
        return None
    lock = WorkDirLock(work_dir)
    if not lock.acquire():
        _refusal = lock.refusal
    return lock


def agree(accelerator) -> None:
    """Every process learns the main process's outcome of :func:`lock_for_run`; raises
    :class:`WorkDirBusy` on every process when it was refused. A collective with several
    processes: every process of a run calls it once, right after the Accelerator exists."""
    global _refusal
    refusal, _refusal = _refusal, None
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        refusal = broadcast_object_list([refusal], from_process=0)[0]
    if refusal:
        raise WorkDirBusy(refusal)
