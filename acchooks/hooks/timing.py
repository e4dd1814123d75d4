"""HookTimer: the time each hook spends at each stage, measured without slowing the loop.

The :class:`~.table.HookTable` dispatches; the timer decides, inside the call, whether a
call is timed:

* the run and epoch stages (rare) are always timed: their dispatch entry is one callable
  that runs the timed loop (``perf_counter`` around each hook);
* the iteration stages are timed on a sample. The entry of ``before_<phase>_iter`` counts
  down (one attribute read and write per iteration) and, when it reaches 0, times both
  stages of that iteration, ``after_<phase>_iter`` following the decision taken at
  ``before_<phase>_iter``. The first iteration is timed; the gap to the next timed one is
  drawn uniformly from ``[0, 2k - 2]`` by a private seeded RNG, so a hook that works every
  N iterations (a logger, an iteration-based evaluation) is neither always nor never
  caught. A timed call stands for itself and the untimed calls just before it (its
  weight), so a slow first iteration counts once; the calls after the last timed one are
  estimated at the weighted mean. Call counts are exact.

  ``k`` is ``sample_every`` when it is an int (1: every iteration). With ``'auto'`` (the
  default) it follows the measured iteration time so that timing costs about
  :data:`AUTO_FRACTION` of the run: a timed iteration costs roughly :data:`AUTO_COST`
  more than a plain one (a clock read and an addition per hook), so iterations of 50 ms
  or more are all timed, 1 ms iterations about one in 50, and ``k`` never exceeds
  :data:`AUTO_MAX`.

With timing off the table calls the bare lists and the timer is never asked.
:meth:`HookTimer.timing` returns the rows, :meth:`HookTimer.report` the table the
runner logs.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .options import HOOK_TIMING
from .stages import STAGES

if TYPE_CHECKING:
    from ..runner.runner import Runner
    from .hook import Hook

# iteration stages, by phase: (before, after)
ITER_STAGES: dict[str, tuple[str, str]] = {
    "train": ("before_train_iter", "after_train_iter"),
    "val": ("before_val_iter", "after_val_iter"),
}
PHASE_OF = {s: phase for phase, pair in ITER_STAGES.items() for s in pair}
AUTO_COST = 5e-6  # s: extra cost of one timed iteration, ~10 hooks (generous)
AUTO_FRACTION = 1e-4  # 'auto': spend about this fraction of the run on timing
AUTO_MAX = 100  # 'auto': time at least ~1 iteration in 100
AUTO_FIRST = 1  # 'auto': until two timed iterations tell the iteration time, time each


def annotate(e: BaseException, fn: Any, stage: str) -> None:
    """Record (once: the innermost hook wins) which hook raised, as ``e.acchooks_hook``
    and, on Python >= 3.11, as a note under the traceback."""
    if getattr(e, "acchooks_hook", None) is not None:
        return
    owner = getattr(fn, "__self__", None)
    where = f"{type(owner).__name__ if owner is not None else repr(fn)}.{stage}"
    try:
        e.acchooks_hook = where  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__
        return
    if hasattr(e, "add_note"):
        e.add_note(f"(raised in hook {where})")


def _nothing(runner: Runner) -> None:
    pass


def bare(stage: str, fns: list[Callable]) -> Callable[[Runner], None]:
    """Call each of ``fns`` with the runner (untimed), naming the hook in any exception."""
    if not fns:
        return _nothing

    def call(runner: Runner) -> None:
        try:
            for fn in fns:
                fn(runner)
        except Exception as e:
            annotate(e, fn, stage)
            raise

    return call


class _Phase:
    """The sampling state of one phase's iterations."""

    __slots__ = ("countdown", "sampled", "gap", "weight", "k", "last")

    def __init__(self, k: int) -> None:
        self.reset(k)

    def reset(self, k: int) -> None:
        self.countdown = 0  # plain iterations left before the next timed one
        self.sampled = False  # the current iteration is timed
        self.gap = 0  # plain iterations planned after the last timed one
        self.weight = 1  # calls the current timed one stands for
        self.k = k  # one iteration in ~k is timed
        self.last: float | None = None  # when the last timed one started ('auto')


class HookTimer:
    """Samples and accumulates the time of each (hook, stage); see the module docstring."""

    def __init__(self, enable: bool = True, sample_every: int | str = "auto", seed: int = 0):
        self._rng = random.Random(seed)  # never the global RNG: training draws from that
        self._hooks: list[Hook] = []
        self._plain: dict[str, list[Callable]] = {s: [] for s in STAGES}
        self.configure(enable, sample_every)

    # ------------------------------------------------------------ set-up
    def configure(self, enable: bool = True, sample_every: int | str = "auto") -> None:
        """``enable=False``: never time; ``sample_every``: time about one iteration in N,
        ``1`` every iteration, ``'auto'`` as the iteration time allows. Resets."""
        HOOK_TIMING["sample_every"].check(sample_every, "hook_timing.sample_every")
        self.enabled, self.sample_every = bool(enable), sample_every
        self._auto = sample_every == "auto"
        self.reset()

    def bind(self, hooks: list[Hook], plain: dict[str, list[Callable]]) -> None:
        """The hooks in run order and, per stage, their bound methods (the table's)."""
        self._hooks, self._plain = hooks, plain
        self.reset()

    def reset(self) -> None:
        """Forget what was measured (the runner calls it when a run starts)."""
        self._time = {s: [0.0] * len(fns) for s, fns in self._plain.items()}
        self._timed = dict.fromkeys(STAGES, 0)  # timed calls
        self._calls = dict.fromkeys(STAGES, 0)  # calls up to the last timed one (weights)
        k = AUTO_FIRST if self._auto else self.sample_every
        if not hasattr(self, "_phases"):
            self._phases = {phase: _Phase(k) for phase in ITER_STAGES}
        for ph in self._phases.values():  # in place: the dispatch entries hold them
            ph.reset(k)

    def entries(self) -> dict[str, Callable[[Runner], None]]:
        """The dispatch table with timing: per stage, the callable the table calls."""
        table: dict[str, Callable[[Runner], None]] = {}
        for stage, fns in self._plain.items():
            if stage in PHASE_OF:
                table[stage] = self._iteration_entry(stage, fns)
            else:
                table[stage] = functools.partial(self.call_timed, stage) if fns else _nothing
        return table

    def _iteration_entry(self, stage: str, fns: list[Callable]) -> Callable[[Runner], None]:
        # on the hot path: the bare loop is inlined (a try costs nothing until it raises)
        ph = self._phases_of(stage)
        timed = functools.partial(self.call_timed, stage)
        if stage == ITER_STAGES[PHASE_OF[stage]][0]:

            def before(runner: Runner) -> None:
                if ph.countdown:
                    ph.countdown -= 1
                    ph.sampled = False
                    try:
                        for fn in fns:
                            fn(runner)
                    except Exception as e:
                        annotate(e, fn, stage)
                        raise
                else:
                    ph.sampled = True
                    timed(runner)

            return before

        def after(runner: Runner) -> None:
            if ph.sampled:
                timed(runner)
                return
            try:
                for fn in fns:
                    fn(runner)
            except Exception as e:
                annotate(e, fn, stage)
                raise

        return after

    def _phases_of(self, stage: str) -> _Phase:
        return self._phases[PHASE_OF[stage]]

    # ------------------------------------------------------------ the timed call
    def call_timed(self, stage: str, runner: Runner) -> None:
        """Call ``stage`` with every hook timed."""
        fns, acc = self._plain[stage], self._time[stage]
        phase = PHASE_OF.get(stage)
        weight = 1 if phase is None else self._plan(stage, self._phases[phase])
        self._calls[stage] += weight
        self._timed[stage] += 1
        i = 0
        t0 = perf_counter()
        try:
            for fn in fns:
                fn(runner)
                t1 = perf_counter()
                acc[i] += (t1 - t0) * weight
                t0 = t1
                i += 1
        except Exception as e:
            annotate(e, fns[i], stage)
            raise

    def _plan(self, stage: str, ph: _Phase) -> int:
        """At a timed ``before_*_iter``: its weight, the next gap (and 'auto''s k)."""
        if stage != ITER_STAGES[PHASE_OF[stage]][0]:
            return ph.weight
        ph.weight = ph.gap + 1  # stands for itself + the untimed calls before it
        if self._auto:
            now = perf_counter()
            if ph.last is not None:  # the mean iteration time since the last timed one
                per_iter = (now - ph.last) / ph.weight
                ph.k = (
                    AUTO_MAX
                    if per_iter <= 0
                    else max(1, min(AUTO_MAX, int(AUTO_COST / (AUTO_FRACTION * per_iter))))
                )
            ph.last = now
        ph.gap = ph.countdown = int(self._rng.random() * (2 * ph.k - 1))  # in [0, 2k - 2]
        return ph.weight

    # ------------------------------------------------------------ results
    def calls(self, stage: str) -> int:
        """How many times ``stage`` was called since the last reset (0 when timing is off)."""
        phase = PHASE_OF.get(stage)
        if phase is None or not self.enabled:
            return self._calls[stage]
        ph = self._phases[phase]
        return self._calls[stage] + ph.gap - ph.countdown

    def timing(self) -> list[dict[str, Any]]:
        """One row per (hook, stage it implements), in run order: ``hook`` (class name,
        ``#2``... for repeats), ``priority``, ``stage``, ``calls``, ``timed`` (calls
        measured), ``total_s`` (estimated total seconds), ``mean_us``."""
        names = [type(h).__name__ for h in self._hooks]
        labels, seen = {}, {}
        for h, n in zip(self._hooks, names, strict=True):
            seen[n] = seen.get(n, 0) + 1
            labels[id(h)] = n if names.count(n) == 1 else f"{n}#{seen[n]}"
        rows: list[dict[str, Any]] = []
        for h in self._hooks:
            for stage in STAGES:
                if not type(h).implements(stage):
                    continue
                i = next(
                    k
                    for k, fn in enumerate(self._plain[stage])
                    if getattr(fn, "__self__", None) is h
                )
                covered, calls = self._calls[stage], self.calls(stage)
                mean = self._time[stage][i] / covered if covered else 0.0
                rows.append(
                    {
                        "hook": labels[id(h)],
                        "priority": h.priority,
                        "stage": stage,
                        "calls": calls,
                        "timed": self._timed[stage],
                        "total_s": mean * calls,
                        "mean_us": mean * 1e6,
                    }
                )
        return rows

    def report(self, wall_s: float | None = None, top: int | None = None) -> str:
        """The table a user reads to find the hook that slows training: per hook and
        stage, total seconds, % of the run's wall time, calls, mean us; largest first."""
        if not self.enabled:
            return "Hook timing is off (hook_timing=dict(enable=False))."
        rows = sorted(self.timing(), key=lambda r: -r["total_s"])
        shown = rows if top is None else rows[:top]
        hook_w = max([len("hook")] + [len(r["hook"]) for r in shown])
        stage_w = max([len("stage")] + [len(r["stage"]) for r in shown])
        timed, calls = self._timed["before_train_iter"], self.calls("before_train_iter")
        how = (
            "every call timed"
            if timed == calls
            else f"{timed} of {calls} train iterations timed, totals scaled to all calls"
        )
        lines = [
            f"Hook timing ({how}):",
            f"{'hook':<{hook_w}}  {'stage':<{stage_w}}  {'total s':>9}  {'% run':>6}  "
            f"{'calls':>7}  {'mean us':>10}",
        ]
        for r in shown:
            pct = f"{100 * r['total_s'] / wall_s:5.1f}%" if wall_s else "-"
            lines.append(
                f"{r['hook']:<{hook_w}}  {r['stage']:<{stage_w}}  {r['total_s']:9.3f}  "
                f"{pct:>6}  {r['calls']:7d}  {r['mean_us']:10.1f}"
            )
        if len(rows) > len(shown):
            lines.append(f"... and {len(rows) - len(shown)} more (hook, stage) pairs")
        total = sum(r["total_s"] for r in rows)
        if wall_s:
            lines.append(
                f"all hooks: {total:.3f} s of {wall_s:.3f} s wall time "
                f"({100 * total / wall_s:.1f}%); the rest is data loading, the "
                f"model's forward pass and the loop"
            )
        else:
            lines.append(f"all hooks: {total:.3f} s")
        return "\n".join(lines)
