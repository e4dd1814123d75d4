"""Background checkpoint saves (``checkpoint_config=dict(..., async_save=True)``).

The :class:`~.checkpointer.Checkpointer` decides which saves go to the background; this
module holds the two pieces it uses:

* :class:`HostSnapshot`: a consistent copy of the whole state (model, optimizer, hook
  states, RNG, counters) in host memory, taken on the training thread at the save point.
  Its buffers are kept and reused by the next snapshot (the same key, shape and dtype), so
  a run holds at most one state's worth of extra host memory. On a GPU they are pinned and
  filled with non-blocking copies; the writer waits for a CUDA event before reading them,
  so the training thread does not wait for the device-to-host copies either.
* :class:`BackgroundSaver`: one worker thread and at most one save in flight. The worker
  only writes files (checksums, fsync, rename, ``latest``, rotation): it never issues a
  collective. On Linux it runs :data:`WRITER_NICE` steps nicer than the training thread,
  so on a busy host the write yields the CPU to training rather than sharing it. The training thread asks for the outcome at an iteration boundary, and the
  Checkpointer agrees on it across processes there (see ``Checkpointer.settle``).
"""

from __future__ import annotations

import functools
import os
import os.path as osp
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from ..checkpoint.faults import kill_point
from ..errors import RunError
from .resume import main_says

# How much nicer than the training thread the writer thread runs (Linux): on a busy host it
# then takes CPU time the training thread does not want, instead of sharing it equally.
WRITER_NICE = 10


class CheckpointSaveError(RunError):
    """A background checkpoint save failed (disk full, permissions, ...): raised by every
    process at the next iteration boundary; the previous checkpoint is untouched."""

    every_process = True


def failure_message(name: str, path: str, error: str, latest: Path | None) -> str:
    """The one error every process reports for a failed background save."""
    committed = osp.isfile(osp.join(path, "manifest.json"))
    what = "was committed, but then failed:" if committed else "failed before its commit:"
    kept = (
        f"the previous checkpoint {latest.name} ('latest') is intact"
        if latest is not None and latest.is_dir()
        else "no earlier checkpoint is affected"
    )
    return (
        f"checkpoint {name}: the background save (async_save=True) {what} {error}; {kept}; "
        f"the run stops. Fix the cause (free space, permissions of {osp.dirname(path)}) and "
        f"rerun with --resume auto"
    )


def lower_priority(nice: int | None = None) -> None:
    """Make the calling thread (only it, and threads it starts later) ``nice`` steps nicer
    (default :data:`WRITER_NICE`): Linux's setpriority takes a thread id. Elsewhere, or
    where not allowed, nothing changes (a priority is a hint, never a reason to fail)."""
    nice = WRITER_NICE if nice is None else nice
    if nice <= 0 or not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        pass


class HostSnapshot:
    """Host-memory copies of a state tree, in buffers reused from one save to the next."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}
        self._used: set[str] = set()
        self._seen: dict[tuple, torch.Tensor] = {}
        self._cuda = False

    @property
    def nbytes(self) -> int:
        """Bytes held by the snapshot buffers."""
        return sum(b.numel() * b.element_size() for b in self._buffers.values())

    def take(self, trees: dict[str, Any]) -> tuple[dict[str, Any], torch.cuda.Event | None]:
        """Copy every tensor of ``trees`` (nested dicts, lists, tuples) into host buffers;
        plain values are kept (they are immutable). Tensors that are the same view (tied
        weights) stay one tensor. Returns the copied trees and, when a copy came from a
        GPU, the CUDA event to wait for before reading them."""
        self._used.clear()
        self._seen.clear()
        self._cuda = False
        out = {}
        for i, (name, tree) in enumerate(trees.items()):
            if i == 1:
                kill_point("snapshot")  # test-only: a kill while the snapshot is taken
            out[name] = self._walk(tree, name)
        for key in set(self._buffers) - self._used:  # state that went away: free it
            del self._buffers[key]
        self._seen.clear()
        event = None
        if self._cuda:
            event = torch.cuda.Event()
            event.record()
        return out, event

    def _walk(self, tree: Any, key: str) -> Any:
        if isinstance(tree, torch.Tensor):
            return self._copy(tree, key)
        if isinstance(tree, dict):
            return {k: self._walk(v, f"{key}/{k}") for k, v in tree.items()}
        if isinstance(tree, (list, tuple)):
            items = [self._walk(v, f"{key}/{i}") for i, v in enumerate(tree)]
            return items if isinstance(tree, list) else tuple(items)
        return tree

    def _copy(self, t: torch.Tensor, key: str) -> torch.Tensor:
        t = t.detach()
        if t.layout != torch.strided or t.device.type == "meta":
            return t.clone()  # rare (sparse) or no data at all: the writer reports it
        view = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.stride())
        view = (*view, t.dtype)
        if t.numel() and view in self._seen:
            return self._seen[view]
        buf = self._buffers.get(key)
        cuda = t.device.type == "cuda"
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
            buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=cuda)
            self._buffers[key] = buf
        buf.copy_(t, non_blocking=cuda)
        self._cuda = self._cuda or cuda
        self._used.add(key)
        if t.numel():
            self._seen[view] = buf
        return buf


class BackgroundSaver:
    """One writer thread, at most one save in flight (see the module docstring).

    Every process records the pending save's name (so all of them settle it at the same
    boundary); only the process that writes has a job running."""

    def __init__(self) -> None:
        self.snapshot = HostSnapshot()
        self.pending: str | None = None  # the name of the save in flight, on every process
        self.path: str | None = None
        self._future: Future | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.write_seconds: list[float] = []  # each background write, submit to end
        self.write_cpu_seconds: list[float] = []  # the writer thread's CPU time for each

    def start(
        self, name: str, path: str, parts: dict | None, write: Callable[[Any, Any], bool]
    ) -> None:
        """Snapshot ``parts`` (the main process's; None elsewhere), then run
        ``write(copied, event or True)`` in the background."""
        job = None
        if parts is not None:
            copied, event = self.snapshot.take(parts)
            job = functools.partial(write, copied, True if event is None else event)
        self.submit(name, path, job)

    def submit(self, name: str, path: str, job: Callable[[], bool] | None) -> None:
        """Start ``job`` (the main process's write; None elsewhere) for save ``name``."""
        if self.pending is not None:
            raise RuntimeError(f"save {self.pending} still in flight")  # the Checkpointer waits
        self.pending, self.path = name, path
        if job is not None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    1, thread_name_prefix="acchooks-ckpt", initializer=lower_priority
                )
            self._future = self._pool.submit(self._timed, job)

    def _timed(self, job: Callable[[], bool]) -> bool:
        t0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            return job()
        finally:
            self.write_seconds.append(time.perf_counter() - t0)
            self.write_cpu_seconds.append(time.thread_time() - cpu0)

    def outcome(self, block: bool) -> dict | None:
        """This process's outcome of the pending save: ``{'finite': bool}`` when committed,
        ``{'error': str}`` when it failed, None while it runs (``block=False``)."""
        fut = self._future
        if fut is None:
            return {"finite": True}  # nothing was written here
        if not block and not fut.done():
            return None
        try:
            return {"finite": bool(fut.result())}
        except Exception as e:  # OSError, CheckpointError, ...: reported, not raised here
            return {"error": f"{type(e).__name__}: {e}"}

    def agree(self, accelerator: Any, block: bool) -> dict | None:
        """The main process's outcome of the pending save on every process (a collective),
        with its ``name`` and ``path``; None while it runs. A settled save is forgotten
        (its snapshot buffers are free for the next one)."""
        outcome = self.outcome(block) if accelerator.is_main_process else None
        outcome = main_says(accelerator, outcome)
        if outcome is None:
            return None
        outcome.update(name=self.pending, path=self.path)
        self.pending = self.path = None
        self._future = None
        return outcome

    def wait(self) -> None:
        """Wait for the job to end (keeping its outcome); no collective."""
        if self._future is not None:
            try:
                self._future.exception()
            except BaseException:  # cancelled: nothing to wait for
                pass

    def close(self) -> dict | None:
        """Wait for the job, then stop the thread; the pending save's ``name``, ``path`` and
        ``error`` if it failed (it stays pending, for :meth:`agree`)."""
        self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        failed = self.outcome(True).get("error") if self.pending is not None else None
        return dict(name=self.pending, path=self.path, error=failed) if failed else None
