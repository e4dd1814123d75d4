"""The dispatch table: stage -> hooks that implement it, in run order; and hook timing.

Hooks are sorted by (priority, registration order), so equal priorities keep the order
in which they were registered (default hooks first, then ``custom_hooks``). The table is
rebuilt only when a hook is registered; calling a stage is a loop over a ready list.

**Timing.** The table also measures the time each hook spends at each stage, without
slowing the iterations down:

* the run and epoch stages (rare) are always timed: their dispatch list holds one entry
  that runs the timed loop (``perf_counter`` around each hook);
* the iteration stages keep the bare loop. The runner times one iteration in about
  ``k``: it asks :attr:`train_countdown` / :attr:`val_countdown` (one attribute read and
  write per iteration) and, when it reaches 0, dispatches both stages of that iteration
  through :meth:`call_timed`. The first iteration is timed; the gap to the next timed one
  is drawn uniformly from ``[0, 2k - 2]`` by a private seeded RNG, so a hook that works
  every N iterations (a logger, an iteration-based evaluation) is neither always nor
  never caught. A timed call stands for itself and the untimed calls just before it (its
  weight), so a slow first iteration counts once; the calls after the last timed one
  are estimated at the weighted mean. Call counts are exact.

  ``k`` is ``sample_every`` when it is an int (1: every iteration). With ``'auto'`` (the
  default) it follows the measured iteration time so that timing costs about
  :data:`AUTO_FRACTION` of the run: a timed iteration costs roughly :data:`AUTO_COST`
  more than a plain one (a clock read and an addition per hook), so iterations of 50 ms
  or more are all timed, 1 ms iterations about one in 50 (+0.1 us per iteration), and
  ``k`` never exceeds :data:`AUTO_MAX`.

:meth:`timing` returns the rows, :meth:`timing_report` the table the runner logs.
"""

from __future__ import annotations

import functools
import random
import sys
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..errors import did_you_mean
from .hook import Hook
from .priority import get_priority, priority_name
from .stages import STAGES

if TYPE_CHECKING:
    from ..runner.runner import Runner

# iteration stages, by phase: (before, after)
ITER_STAGES: dict[str, tuple[str, str]] = {
    "train": ("before_train_iter", "after_train_iter"),
    "val": ("before_val_iter", "after_val_iter"),
}
_PHASE_OF = {s: phase for phase, pair in ITER_STAGES.items() for s in pair}
_FIRST = {pair[0]: phase for phase, pair in ITER_STAGES.items()}  # before_*_iter -> phase
_COUNTDOWN = {phase: f"{phase}_countdown" for phase in ITER_STAGES}
NEVER = sys.maxsize  # countdown when timing is off
AUTO_COST = 5e-6  # s: extra cost of one timed iteration, ~10 hooks (generous)
AUTO_FRACTION = 1e-4  # 'auto': spend about this fraction of the run on timing
AUTO_MAX = 100  # 'auto': time at least ~1 iteration in 100
AUTO_FIRST = 1  # 'auto': until two timed iterations tell the iteration time, time each


def _where(fn: Any, stage: str) -> str:
    owner = getattr(fn, "__self__", None)
    name = type(owner).__name__ if owner is not None else repr(fn)
    return f"{name}.{stage}"


def _annotate(e: BaseException, fn: Any, stage: str) -> None:
    """Record (once: the innermost hook wins) which hook raised, as ``e.acchooks_hook``
    and, on Python >= 3.11, as a note under the traceback."""
    if getattr(e, "acchooks_hook", None) is not None:
        return
    where = _where(fn, stage)
    try:
        e.acchooks_hook = where  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__
        return
    if hasattr(e, "add_note"):
        e.add_note(f"(raised in hook {where})")


class HookTable:
    def __init__(
        self, timing: bool = True, sample_every: int | str = "auto", seed: int = 0
    ) -> None:
        self._hooks: list[Hook] = []
        self._plain: dict[str, list] = {s: [] for s in STAGES}
        self._table: dict[str, list] = self._plain
        self._timing, self._sample_every = True, "auto"
        self._rng = random.Random(seed)  # never the global RNG: training draws from that
        self.configure_timing(enable=timing, sample_every=sample_every)

    # ------------------------------------------------------------ registration
    @property
    def hooks(self) -> list[Hook]:
        """All registered hooks in run order."""
        return list(self._hooks)

    def register(self, hook: Hook, priority: int | str | None = None) -> Hook:
        if not isinstance(hook, Hook):
            raise TypeError(f"hooks must be Hook instances, got {type(hook).__name__}")
        if priority is not None:
            hook.priority = get_priority(priority)
        else:
            hook.priority = get_priority(getattr(hook, "priority", 50))
        keys = {h.state_key for h in self._hooks}
        if hook.state_key in keys and type(hook).state_dict is not Hook.state_dict:
            raise ValueError(
                f"two stateful hooks share state_key '{hook.state_key}'; give one of them a "
                f"distinct state_key so checkpoints can tell their state apart"
            )
        # stable sort: equal priorities keep registration order
        self._hooks.append(hook)
        self._hooks.sort(key=lambda h: h.priority)
        self._plain = {
            s: [getattr(h, s) for h in self._hooks if type(h).implements(s)] for s in STAGES
        }
        self._build()
        return hook

    def _build(self) -> None:
        """The dispatch lists: bare for iteration stages (and for all when timing is off);
        for the rare stages one entry that runs the timed loop."""
        if not self._timing:
            self._table = self._plain
        else:
            self._table = {
                s: (fns if s in _PHASE_OF or not fns else [functools.partial(self.call_timed, s)])
                for s, fns in self._plain.items()
            }
        self.reset_timing()

    def get(self, name: str) -> Hook:
        for h in self._hooks:
            if type(h).__name__ == name:
                return h
        raise KeyError(
            f"no hook '{name}' registered"
            f"{did_you_mean(name, [type(h).__name__ for h in self._hooks])}"
        )

    # ------------------------------------------------------------ dispatch
    def call(self, stage: str, runner: Runner) -> None:
        try:
            for fn in self._table[stage]:
                fn(runner)
        except Exception as e:
            _annotate(e, fn, stage)
            raise

    def call_timed(self, stage: str, runner: Runner) -> None:
        """Call ``stage`` with every hook timed. The runner uses it for the sampled
        iterations (both stages of one iteration, ``before_*`` first)."""
        fns, acc = self._plain[stage], self._time[stage]
        phase = _PHASE_OF.get(stage)
        if phase is None:
            weight = 1
        else:
            if stage in _FIRST:  # stands for itself + the untimed calls before it
                weight = self._weights[phase] = self._gaps[phase] + 1
                k = self._k[phase]
                if self._auto:
                    now, last = perf_counter(), self._last[phase]
                    if last is not None:  # the mean iteration time since the last timed one
                        per_iter = (now - last) / weight
                        k = (
                            AUTO_MAX
                            if per_iter <= 0
                            else max(1, min(AUTO_MAX, int(AUTO_COST / (AUTO_FRACTION * per_iter))))
                        )
                        self._k[phase] = k
                    self._last[phase] = now
                gap = int(self._random() * (2 * k - 1))  # uniform in [0, 2k - 2]
                self._gaps[phase] = gap
                setattr(self, _COUNTDOWN[phase], gap)
            weight = self._weights[phase]
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
            _annotate(e, fns[i], stage)
            raise

    # ------------------------------------------------------------ timing
    def configure_timing(self, enable: bool = True, sample_every: int | str = "auto") -> None:
        """``enable=False``: never time (bare loops everywhere); ``sample_every``: time
        about one iteration in N, ``1`` every iteration, ``'auto'`` as the iteration time
        allows (see the module doc). Resets what was measured."""
        if sample_every != "auto" and (
            not isinstance(sample_every, int) or isinstance(sample_every, bool) or sample_every < 1
        ):
            raise ValueError(
                f"hook_timing.sample_every: expected 'auto' or an int >= 1, got {sample_every!r}"
            )
        self._timing, self._sample_every = bool(enable), sample_every
        self._auto = sample_every == "auto"
        self._random = self._rng.random
        self._build()

    @property
    def timing_enabled(self) -> bool:
        return self._timing

    @property
    def sample_every(self) -> int | str:
        return self._sample_every

    def reset_timing(self) -> None:
        """Forget what was measured (the runner calls it when a run starts)."""
        self._time = {s: [0.0] * len(fns) for s, fns in self._plain.items()}
        self._timed = dict.fromkeys(STAGES, 0)  # timed calls
        self._calls = dict.fromkeys(STAGES, 0)  # calls up to the last timed one (weights)
        self._gaps = dict.fromkeys(ITER_STAGES, 0)  # plain iterations planned after it
        self._weights = dict.fromkeys(ITER_STAGES, 1)  # calls the current timed one stands for
        k = AUTO_FIRST if self._auto else self._sample_every
        self._k = dict.fromkeys(ITER_STAGES, k)  # one iteration in ~k is timed
        self._last: dict[str, float | None] = dict.fromkeys(ITER_STAGES)  # last timed, 'auto'
        start = 0 if self._timing else NEVER  # the first iteration is timed
        self.train_countdown = self.val_countdown = start

    def calls(self, stage: str) -> int:
        """How many times ``stage`` was called since the last reset (0 when timing is off)."""
        phase = _PHASE_OF.get(stage)
        if phase is None or not self._timing:
            return self._calls[stage]
        return self._calls[stage] + self._gaps[phase] - getattr(self, f"{phase}_countdown")

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

    def timing_report(self, wall_s: float | None = None, top: int | None = None) -> str:
        """The table a user reads to find the hook that slows training: per hook and
        stage, total seconds, % of the run's wall time, calls, mean us; largest first."""
        if not self._timing:
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

    # ------------------------------------------------------------ description
    def describe(self) -> str:
        """mmcv's startup table: for each stage, the hooks that run there, in order."""
        lines = ["Hooks will be executed in the following order:"]
        for stage in STAGES:
            hooks = [h for h in self._hooks if type(h).implements(stage)]
            if not hooks:
                continue
            lines.append(f"{stage}:")
            lines.append("(priority) hook")
            lines.append("--------------------")
            lines.extend(f"({priority_name(h.priority):<12}) {type(h).__name__}" for h in hooks)
            lines.append("--------------------")
        return "\n".join(lines)
