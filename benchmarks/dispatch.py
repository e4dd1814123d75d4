"""Hook dispatch cost: acchooks' HookTable next to direct calls and mmcv's getattr loop.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/dispatch.py [--quick]

The hook set is ten hooks standing in for the default ones plus two custom ones
(LrUpdaterHook, MomentumUpdaterHook, OptimizerHook, CheckpointHook, IterTimerHook,
EvalHook, TextLoggerHook, TensorboardLoggerHook, EMAHook, EmptyCacheHook): each stand-in
is a Hook subclass with the priority of the real class that implements, as a no-op, exactly
the stages the real class implements (``Hook.implements``), so only dispatch is timed.
One "iteration" calls all 10 stages once; "train iter" calls the two stages a train
iteration calls (before/after_train_iter). Dispatchers:

* ``HookTable.call``: the table the runner uses (only hooks implementing a stage);
* ``Runner.call_hook``: the same through the runner method ;
* ``direct``: the same bound methods from a flat, prebuilt tuple;
* ``mmcv getattr``: mmcv's ``for hook in hooks: getattr(hook, stage)(runner)`` over
  every hook, unimplemented stages going through the base class' fallbacks.

Repetitions of each dispatcher are interleaved; prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import timeit
from types import SimpleNamespace

import acchooks.hooks  # noqa: F401 - fills HOOKS
from acchooks.hooks.hook import Hook
from acchooks.hooks.stages import STAGES
from acchooks.hooks.table import HookTable
from acchooks.registry import HOOKS
from acchooks.runner.runner import Runner

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK_NAMES = (
    "LrUpdaterHook",
    "MomentumUpdaterHook",
    "OptimizerHook",
    "CheckpointHook",
    "IterTimerHook",
    "EvalHook",
    "TextLoggerHook",
    "TensorboardLoggerHook",
    "EMAHook",
    "EmptyCacheHook",
)
TRAIN_ITER = ("before_train_iter", "after_train_iter")


def _noop(self, runner) -> None:
    pass


def stand_ins() -> list[Hook]:
    """A no-op Hook per real class, implementing the same stages, same priority."""
    hooks = []
    for name in HOOK_NAMES:
        real = HOOKS.get(name)
        body = {s: _noop for s in STAGES if real.implements(s)}
        cls = type(f"Noop{name}", (Hook,), {"priority": int(getattr(real, "priority", 50)), **body})
        hooks.append(cls())
    return hooks


def dispatchers(stages: tuple[str, ...]) -> tuple[dict, dict]:
    """name -> zero-argument callable running ``stages`` once; and a description."""
    hooks = stand_ins()
    table = HookTable()
    for h in hooks:
        table.register(h)
    ordered = table.hooks
    # call_hook also carries out a save CheckpointHook asked for: none here
    runner = SimpleNamespace(
        hooks=table, stage=None, checkpointer=SimpleNamespace(save_requested=lambda: None)
    )
    flat = tuple(getattr(h, s) for s in stages for h in ordered if type(h).implements(s))

    def via_table() -> None:
        call = table.call
        for s in stages:
            call(s, runner)

    def via_runner() -> None:
        for s in stages:
            Runner.call_hook(runner, s)

    def direct() -> None:
        for fn in flat:
            fn(runner)

    def mmcv() -> None:
        for s in stages:
            for h in ordered:
                getattr(h, s)(runner)

    info = {"hooks": len(ordered), "calls": len(flat), "mmcv_calls": len(ordered) * len(stages)}
    return {
        "HookTable.call": via_table,
        "Runner.call_hook": via_runner,
        "direct": direct,
        "mmcv getattr": mmcv,
    }, info


def bench(stages: tuple[str, ...], number: int, reps: int, warmup: int = 1) -> dict:
    fns, info = dispatchers(stages)
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for rep in range(warmup + reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            t = timeit.timeit(fns[name], number=number)
            if rep >= warmup:
                times[name].append(t / number * 1e6)
    base = statistics.median(times["direct"])
    rows = {
        n: {
            "median_us": statistics.median(t),
            "min_us": min(t),
            "max_us": max(t),
            "ratio_to_direct": statistics.median(t) / base,
        }
        for n, t in times.items()
    }
    return {"stages": list(stages), **info, "results": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    ap.add_argument("--number", type=int, default=None, help="calls per timing (default 20000)")
    ap.add_argument("--reps", type=int, default=None, help="timings per dispatcher (default 15)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "dispatch.json"))
    args = ap.parse_args()
    number = args.number or (500 if args.quick else 20000)
    reps = args.reps or (3 if args.quick else 15)
    results = {
        "all 10 stages": bench(STAGES, number, reps),
        "train iter": bench(TRAIN_ITER, number, reps),
    }
    print(
        f"hook dispatch, {len(HOOK_NAMES)} no-op stand-ins of the default+custom hooks, "
        f"{reps} interleaved timings of {number} calls; us per iteration, median [min-max]"
    )
    print(f"{'per':14s} {'dispatcher':18s} {'us':>22s} {'x direct':>9s} {'calls':>6s}")
    for per, r in results.items():
        for name, v in r["results"].items():
            calls = r["mmcv_calls"] if name == "mmcv getattr" else r["calls"]
            print(
                f"{per:14s} {name:18s} {v['median_us']:7.3f} [{v['min_us']:.3f}-{v['max_us']:.3f}]"
                f" {v['ratio_to_direct']:9.2f} {calls:6d}"
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "hooks": list(HOOK_NAMES),
                "number": number,
                "reps": args.reps or reps,
                "results": results,
                "env": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "quick": args.quick,
                },
            },
            f,
            indent=1,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
