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
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

ENV = "ACCHOOKS_TEST_KILL_AT"
PHASES = ("model", "optimizer", "before_manifest", "before_rename", "latest", "rotation")
_reached: dict[str, int] = {}


def kill_point(phase: str, half_done: Callable[[], None] | None = None) -> None:
    """Die here if ``ACCHOOKS_TEST_KILL_AT`` names this phase (and occurrence).

    ``half_done`` runs just before the kill to leave what a kill in the middle of the
    operation would leave (a cut file, a half-deleted directory)."""
    spec = os.environ.get(ENV)
    if spec is None:  # always the case outside the crash tests
        return
    _maybe_kill(phase, spec, half_done)


def truncate_half(f: Path) -> Callable[[], None]:
    """A ``half_done`` that cuts ``f`` to half its size, as a kill mid-write would."""

    def cut() -> None:
        with open(f, "rb+") as fh:
            fh.truncate(os.fstat(fh.fileno()).st_size // 2)
            os.fsync(fh.fileno())

    return cut


def _maybe_kill(phase: str, spec: str, half_done: Callable[[], None] | None) -> None:
    name, _, nth = spec.partition(":")
    # A typo must fail the test loudly, not silently never kill.
    if name not in PHASES or not (nth == "" or (nth.isdigit() and int(nth) > 0)):
        raise ValueError(
            f"{ENV}={spec!r}: expected <phase>[:<n>] with phase one of "
            f"{', '.join(PHASES)} and n a positive int"
        )
    _reached[phase] = _reached.get(phase, 0) + 1
    if name != phase or _reached[phase] != int(nth or 1):
        return
    if half_done is not None:
        half_done()
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
