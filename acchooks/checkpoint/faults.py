"""Test-only fault injection: SIGKILL this process at a named phase of a save.

``ACCHOOKS_TEST_KILL_AT=<phase>[:<n>]`` kills the process with SIGKILL the ``n``-th time
(default 1) it reaches ``<phase>``. The crash tests use it to prove that a kill at any
moment of a save leaves the last complete checkpoint loadable. It is not a user setting:
never set it outside tests. Unset, a kill point costs one ``os.environ`` lookup.

Phases, in the order a save reaches them (``n`` counts per phase and per process, so
``model:2`` is the second save and ``rotation:1`` the first retention removal):

``model``            mid ``model.safetensors``: the file is cut to half its size, then the
                     kill, which is what a kill during the write leaves on disk
``optimizer``        mid ``optimizer.safetensors``, likewise
``before_manifest``  every data file written and synced, ``manifest.json`` not yet
``before_rename``    staging directory complete with its manifest, not yet renamed
``latest``           checkpoint committed; the new ``latest`` pointer is written to a
                     temporary file that has not yet replaced the old pointer
``rotation``         an old checkpoint renamed to a trash name and partly deleted

Background saves (``async_save=True``) reach the same phases on their writer thread, and
one more on the training thread, before them: ``snapshot`` (the host copy of the state
half taken; listed in :data:`ASYNC_PHASES`).

``ACCHOOKS_TEST_FAIL_AT=<phase>[:<n>]`` instead raises ``OSError(ENOSPC)`` there, as a
full disk would (the background-failure tests use it).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path

ENV, FAIL_ENV = "ACCHOOKS_TEST_KILL_AT", "ACCHOOKS_TEST_FAIL_AT"
PHASES = ("model", "optimizer", "before_manifest", "before_rename", "latest", "rotation")
ASYNC_PHASES = ("snapshot",)
_reached: dict[str, int] = {}
_failed: dict[str, int] = {}


def kill_point(phase: str, half_done: Callable[[], None] | None = None) -> None:
    """Die here if ``ACCHOOKS_TEST_KILL_AT`` names this phase (and occurrence).

    ``half_done`` runs just before the kill to leave what a kill in the middle of the
    operation would leave (a cut file, a half-deleted directory)."""
    spec, fail = os.environ.get(ENV), os.environ.get(FAIL_ENV)
    if spec is None and fail is None:  # always the case outside the crash tests
        return
    if fail is not None and _hit(phase, fail, _failed, FAIL_ENV):
        raise OSError(errno.ENOSPC, f"No space left on device (injected by {FAIL_ENV})")
    if spec is not None:
        _maybe_kill(phase, spec, half_done)


def truncate_half(f: Path) -> Callable[[], None]:
    """A ``half_done`` that cuts ``f`` to half its size, as a kill mid-write would."""

    def cut() -> None:
        with open(f, "rb+") as fh:
            fh.truncate(os.fstat(fh.fileno()).st_size // 2)
            os.fsync(fh.fileno())

    return cut


def _hit(phase: str, spec: str, counts: dict[str, int], env: str) -> bool:
    """Whether ``spec`` names this phase and this is its occurrence (counted in ``counts``)."""
    name, _, nth = spec.partition(":")
    # A typo must fail the test loudly, not silently never kill.
    if name not in PHASES + ASYNC_PHASES or not (nth == "" or (nth.isdigit() and int(nth) > 0)):
        raise ValueError(
            f"{env}={spec!r}: expected <phase>[:<n>] with phase one of "
            f"{', '.join(PHASES + ASYNC_PHASES)} and n a positive int"
        )
    counts[phase] = counts.get(phase, 0) + 1
    return name == phase and counts[phase] == int(nth or 1)


def _maybe_kill(phase: str, spec: str, half_done: Callable[[], None] | None) -> None:
    if not _hit(phase, spec, _reached, ENV):
        return
    if half_done is not None:
        half_done()
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
