"""Checkpoints inside a real training loop: the synchronous durable save next to
``checkpoint_config.async_save=True`` (rows of benchmarks/checkpoint.py, ``--loop``).

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python benchmarks/checkpoint.py --loop-only

The acchooks Runner trains timm's resnet50 (pretrained=False) with SGD momentum and an
EMAHook on generated 32 px Shapes images, an IterBasedRunner, saving every ``--every``
iterations (fsync + xxh3_128, max_keep_ckpts=1); the same run without checkpoints is the
baseline. Three runs (none, sync, async) are interleaved ``--rounds`` times, rotating which
goes first. Per save:

* stall: from the CheckpointHook's call to the next iteration starting, minus the same gap
  on an iteration without a save (the other hooks' share);
* write: the synchronous save's stall, or the background write from submit to commit (and
  the writer thread's CPU time);
* steps/s of each run over whole save periods after the first one, iterations
  ``2 * every`` to the last multiple of ``every``: each mode pays for the same number of
  saves there (a synchronous save's stall at the end of a period, a background write in
  the period after its save point). The first save is left out of this window and
  reported on its own ("first save"): for ``async_save`` it allocates and first touches
  the snapshot buffers (283 MB here; on a fresh VM that alone took up to ~1 s), once per
  run. The defaults (every 15 of 140 iterations) make the synchronous run lose >= 10%
  here; the ratios to the run without saves are also given per round (same round, so the
  same machine load), median and min-max.

Separate runs differ by up to ~10% in steps/s on a small VM (memory layout, neighbours), more
than the effect measured. So steps/s are also measured **within one run** ("rotated"): one
IterBasedRunner saves every ``every`` iterations and a hook switches the mode of each save
point in turn (none: the CheckpointHook skips it; sync; async), waiting for a background save
before switching; each save period's steps/s (from a save point to the next) counts for the
mode of the save that starts it. The first 6 periods are warm-up (the first async save
allocates the snapshot buffers).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

from acchooks.hooks.hook import Hook
from acchooks.registry import HOOKS


@HOOKS.register_module()
class SaveStallProbe(Hook):
    """Times after_train_iter (just before the CheckpointHook) -> the next before_train_iter."""

    def __init__(self, every: int):
        self.every, self.gaps, self.starts, self._t = every, {}, [], None

    def before_train_iter(self, runner: Any) -> None:
        now = time.perf_counter()
        self.starts.append(now)
        if self._t is not None:
            self.gaps.setdefault(self._save, []).append(now - self._t)

    def after_train_iter(self, runner: Any) -> None:
        self._save = (runner.iter + 1) % self.every == 0
        self._t = time.perf_counter()


MODES = ("none", "sync", "async")


@HOOKS.register_module()
class SaveModeRotator(Hook):
    """Switches each save point's mode in turn (see the module docstring); runs before the
    CheckpointHook (priority 45 < NORMAL) so that the switch applies to this save point."""

    def __init__(self, every: int, warmup_periods: int = 6):
        self.every, self.warmup, self.k, self.t = every, warmup_periods, 0, None
        self.steps_per_s: dict[str, list[float]] = {m: [] for m in MODES}
        self.mode = "none"

    def after_train_iter(self, runner: Any) -> None:
        if (runner.iter + 1) % self.every:
            return
        now = time.perf_counter()
        if self.t is not None and self.k > self.warmup:
            self.steps_per_s[self.mode].append(self.every / (now - self.t))
        from acchooks.hooks.checkpoint import CheckpointHook
        from acchooks.runner.async_save import BackgroundSaver

        ck = runner.checkpointer
        ck.settle(block=True)  # the previous background save is committed
        if not hasattr(self, "_saver"):
            self._saver = ck.background or BackgroundSaver()
        self.mode = MODES[self.k % len(MODES)]
        self.k += 1
        ck.background = self._saver if self.mode == "async" else None
        for hook in runner.hooks.find(CheckpointHook):
            hook.interval = 10**9 if self.mode == "none" else self.every
        self.t = now


def rotated_rows(every: int = 15, periods: int = 10) -> dict[str, Any]:
    """steps/s of each mode within one run, ``periods`` save periods each after warm-up."""
    from acchooks.testing import run_config

    # save points 1..7 start the warm-up periods; 3 * periods measured ones follow
    iters = every * (len(MODES) * periods + 7) + 1
    with tempfile.TemporaryDirectory(prefix="acchooks-loop-") as work:
        runner = run_config(
            _config(
                work,
                every,
                iters,
                "async",
                [dict(type="SaveModeRotator", every=every, priority=45)],
            )
        )
    rot = next(h for h in runner.hooks.hooks if isinstance(h, SaveModeRotator))
    sps = rot.steps_per_s
    base = statistics.median(sps["none"])
    return {
        "every": every,
        "periods_per_mode": {m: len(v) for m, v in sps.items()},
        "steps_per_s": {m: _spread(v) for m, v in sps.items()},
        "steps_vs_no_save": {m: statistics.median(sps[m]) / base for m in ("sync", "async")},
    }


def _config(work: str, every: int, iters: int, mode: str, hooks: list) -> Any:
    from acchooks.testing import tiny_config

    ckpt = (
        dict(interval=-1, save_last=False)
        if mode == "none"
        else dict(
            interval=every,
            by_epoch=False,
            max_keep_ckpts=1,
            save_last=False,
            async_save=mode == "async",
        )
    )
    return tiny_config(
        work,
        model=dict(model_name="resnet50"),
        data=dict(samples_per_gpu=4, train=dict(num_samples=4 * iters, img_size=32)),
        runner=dict(_delete_=True, type="IterBasedRunner", max_iters=iters),
        checkpoint_config=ckpt,
        log_config=dict(interval=10**6, hooks=[]),
        hook_timing=dict(enable=False),
        custom_hooks=[dict(type="EMAHook", momentum=0.001), *hooks],
    )


def _run(mode: str, every: int, iters: int, work: str) -> dict[str, Any]:
    from acchooks.testing import run_config

    cfg = _config(work, every, iters, mode, [dict(type="SaveStallProbe", every=every, priority=49)])
    runner = run_config(cfg)
    probe = next(h for h in runner.hooks.hooks if isinstance(h, SaveStallProbe))
    end = every * ((len(probe.starts) - 1) // every)  # whole save periods (docstring)
    starts = probe.starts[2 * every : end + 1]
    bg = runner.checkpointer.background
    return {
        "steps_per_s": (len(starts) - 1) / (starts[-1] - starts[0]),
        "save_gaps": probe.gaps.get(True, [])[1:],
        "first_save_gap": (probe.gaps.get(True) or [None])[0],
        "other_gaps": probe.gaps.get(False, []),
        "writes": list(bg.write_seconds) if bg is not None else [],
        "write_cpu": list(bg.write_cpu_seconds) if bg is not None else [],
        "snapshot_bytes": bg.snapshot.nbytes if bg is not None else 0,
    }


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def loop_rows(every: int = 15, iters: int = 140, rounds: int = 3) -> dict[str, Any]:
    """Run the comparison; returns the rows (medians over every save but the first, of
    every round)."""
    if iters < 3 * every + 1:
        raise SystemExit(f"--iters must be at least 3 * --every + 1 (got {iters}, {every})")
    got: dict[str, list[dict]] = {"none": [], "sync": [], "async": []}
    modes = list(got)
    load = [os.getloadavg()[0]]
    for r in range(rounds):
        for mode in modes[r % 3 :] + modes[: r % 3]:
            with tempfile.TemporaryDirectory(prefix="acchooks-loop-") as work:
                got[mode].append(_run(mode, every, iters, work))
            load.append(os.getloadavg()[0])

    def med(mode: str, key: str) -> float:
        return statistics.median(x for run in got[mode] for x in run[key])

    other = med("none", "other_gaps")
    stall = {m: med(m, "save_gaps") - other for m in ("sync", "async")}
    first = {
        m: statistics.median(run["first_save_gap"] for run in got[m]) - other
        for m in ("sync", "async")
    }
    steps = {m: statistics.median(run["steps_per_s"] for run in got[m]) for m in got}
    paired = {  # per round: the same round's run without saves as the base
        m: [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(got[m], got["none"], strict=True)]
        for m in ("sync", "async")
    }
    rows = {
        "every": every,
        "iters": iters,
        "rounds": rounds,
        "stall_s": stall,
        "stall_async_vs_sync": stall["async"] / stall["sync"],
        "first_save_stall_s": first,
        "write_s": {"sync": stall["sync"], "async": med("async", "writes")},
        "write_async_vs_sync": med("async", "writes") / stall["sync"],
        "write_cpu_s": {"async": med("async", "write_cpu")},
        "steps_per_s": steps,
        "steps_per_s_runs": {m: _spread([run["steps_per_s"] for run in got[m]]) for m in got},
        "steps_vs_no_save": {m: steps[m] / steps["none"] for m in ("sync", "async")},
        "steps_vs_no_save_per_round": {m: _spread(v) for m, v in paired.items()},
        "snapshot_bytes": got["async"][0]["snapshot_bytes"],
        "load_avg_1min": _spread(load),
        "cpus": os.cpu_count(),
    }
    rows["rotated"] = rotated_rows(every)
    _print(rows)
    return rows


def _print(rows: dict[str, Any]) -> None:
    stall, steps, pr = rows["stall_s"], rows["steps_per_s"], rows["steps_vs_no_save_per_round"]
    la = rows["load_avg_1min"]
    print(
        f"in a training loop (resnet50 + SGD momentum + EMA, save every {rows['every']} of "
        f"{rows['iters']} iters, {rows['rounds']} rounds; 1-min load average "
        f"{la['median']:.1f} [{la['min']:.1f}-{la['max']:.1f}] on {rows['cpus']} CPUs):\n"
        f"  stall per save sync {stall['sync']:.3f} s, async {stall['async']:.3f} s "
        f"(x{rows['stall_async_vs_sync']:.2f}); the first save of a run: sync "
        f"{rows['first_save_stall_s']['sync']:.3f} s, async {rows['first_save_stall_s']['async']:.3f} s\n"
        f"  write sync {stall['sync']:.3f} s, async in the background "
        f"{rows['write_s']['async']:.3f} s (x{rows['write_async_vs_sync']:.2f}; writer CPU "
        f"{rows['write_cpu_s']['async']:.3f} s)\n"
        f"  steps/s none {steps['none']:.2f}, sync {steps['sync']:.2f}, async "
        f"{steps['async']:.2f}; vs none per round: sync x{pr['sync']['median']:.3f} "
        f"[{pr['sync']['min']:.3f}-{pr['sync']['max']:.3f}], async "
        f"x{pr['async']['median']:.3f} [{pr['async']['min']:.3f}-{pr['async']['max']:.3f}]\n"
        f"  snapshot buffers {rows['snapshot_bytes'] / 1e6:.0f} MB"
    )
    rot = rows["rotated"]
    sp = rot["steps_per_s"]
    print(
        f"  within one run, save modes rotated ({rot['periods_per_mode']['async']} periods of "
        f"{rot['every']} iters each): steps/s none {sp['none']['median']:.2f} "
        f"[{sp['none']['min']:.2f}-{sp['none']['max']:.2f}], sync {sp['sync']['median']:.2f} "
        f"(x{rot['steps_vs_no_save']['sync']:.3f}), async {sp['async']['median']:.2f} "
        f"(x{rot['steps_vs_no_save']['async']:.3f})"
    )
