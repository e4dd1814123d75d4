"""Mixup/CutMix and the repeated-augmentation order: acchooks next to timm, same run.

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 python benchmarks/mixup.py

- **mixing**: a 128x3x224x224 float batch (``--batch``, ``--size``), mixup 0.8 + CutMix
  1.0, switch 0.5, label smoothing 0.1, per mode. acchooks' ``MixupHook.mix`` (timm's
  ``Mixup`` with its draws seeded per batch, the global NumPy RNG saved and restored)
  against timm's ``Mixup`` on the same copy of the batch, its global RNG seeded with the
  same seed outside the timer, so both do exactly the same mixing;
- **sampler**: one epoch's order over ``--samples`` (ImageNet's 1,281,167) for
  ``--processes`` processes: acchooks' ``RepeatAugSampler`` (every process's order, as
  Accelerate deals it) against timm's ``RepeatAugSampler`` iterated for every rank.

Reps are interleaved, alternating which side goes first; medians, min-max, ratios.
Writes JSON to ``benchmarks/results/mixup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from timm.data import Mixup
from timm.data.distributed_sampler import RepeatAugSampler as TimmRepeatAugSampler

from acchooks.datasets.samplers import RepeatAugSampler
from acchooks.hooks.mixup import MixupHook, draw_seed

ARGS = dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1)


def interleaved(
    sides: dict[str, Callable[[int], float]], reps: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per rep of each side; each side's callable times itself (setup outside)."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for rep in range(warmup + reps):
        for name in names if rep % 2 else names[::-1]:
            t = sides[name](rep)
            if rep >= warmup:
                times[name].append(t)
    return times


def summary(times: dict[str, list[float]], ours: str, theirs: str) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_ms": {k: 1e3 * v for k, v in med.items()},
        "min_max_ms": {k: [1e3 * min(v), 1e3 * max(v)] for k, v in times.items()},
        "ratio": med[ours] / med[theirs],
    }


def mixing(mode: str, args: argparse.Namespace) -> dict:
    classes = 1000
    x = torch.randn(args.batch, 3, args.size, args.size)
    t = torch.randint(0, classes, (args.batch,))
    hook = MixupHook(**ARGS, mode=mode, num_classes=classes)
    timm_mixup = Mixup(**ARGS, mode=mode, num_classes=classes)

    def ours(rep: int) -> float:
        batch = x.clone()
        t0 = time.perf_counter()
        hook.mix(batch, t, draw_seed(0, 0, rep))
        return time.perf_counter() - t0

    def theirs(rep: int) -> float:
        batch = x.clone()
        seed = draw_seed(0, 0, rep)
        np.random.seed([seed & 0xFFFFFFFF, seed >> 32])  # the same draws as ours
        t0 = time.perf_counter()
        timm_mixup(batch, t)
        return time.perf_counter() - t0

    times = interleaved({"acchooks": ours, "timm": theirs}, args.reps, args.warmup)
    return summary(times, "acchooks", "timm")


def sampler(args: argparse.Namespace) -> dict:
    n, world = args.samples, args.processes
    data = range(n)  # timm's sampler only takes len() of it
    ours_s = RepeatAugSampler(n, num_processes=world, batch_size=args.sampler_batch)
    timm_s = [TimmRepeatAugSampler(data, num_replicas=world, rank=r) for r in range(world)]

    def ours(rep: int) -> float:
        ours_s.set_epoch(rep)
        t0 = time.perf_counter()
        list(ours_s)
        return time.perf_counter() - t0

    def theirs(rep: int) -> float:
        t0 = time.perf_counter()
        for s in timm_s:
            s.set_epoch(rep)
            list(s)
        return time.perf_counter() - t0

    times = interleaved({"acchooks": ours, "timm": theirs}, max(3, args.reps // 4), 1)
    return summary(times, "acchooks", "timm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1_281_167)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--sampler-batch", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="smoke sizes")
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "mixup.json")
    )
    args = ap.parse_args()
    if args.quick:
        args.batch, args.size, args.reps, args.samples = 16, 64, 4, 50_000
    result = {
        "threads": torch.get_num_threads(),
        "batch": [args.batch, 3, args.size, args.size],
        "mixing": {mode: mixing(mode, args) for mode in ("batch", "pair", "elem")},
        "sampler": {"samples": args.samples, "processes": args.processes, **sampler(args)},
    }
    print(f"{'':16} {'acchooks ms':>12} {'timm ms':>10} {'ratio':>7}")
    rows = [(f"mix {m}", r) for m, r in result["mixing"].items()] + [("sampler", result["sampler"])]
    for name, r in rows:
        med = r["median_ms"]
        print(f"{name:16} {med['acchooks']:12.2f} {med['timm']:10.2f} {r['ratio']:7.3f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
