"""SeededDataset's per-sample cost: the seeding wrapper over a dataset returning its index.

    OMP_NUM_THREADS=1 python benchmarks/seeded_dataset.py [--quick] [--out FILE]

acchooks wraps every train dataset in :class:`acchooks.datasets.seeded.SeededDataset`
so that a sample's random augmentation is a function of (seed, epoch, index). This
measures what that costs per sample, against the bare dataset, in the same run (the two
sides interleaved rep by rep, the order alternating), over three paths:

* ``getitem``: ``ds[i]`` called directly in the main process (every call saves and
  restores the main process's RNGs);
* ``loader0``: a DataLoader with ``num_workers=0`` and batch 32 (the quickstart's
  ``workers_per_gpu=0``), which fetches a batch with one ``__getitems__`` call;
* ``loader1``: a DataLoader with one worker process and batch 256 (the worker's RNGs are
  its own: nothing to restore). The IPC cost is the same on both sides.

and two datasets: ``index`` (returns its index; draws nothing) and ``draws`` (returns one
draw from each of Python's, NumPy's and torch's global RNGs, as a pipeline using all three
would). Reports µs per sample: the bare side, the seeded side, and their difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from acchooks.datasets.seeded import SeededDataset  # noqa: E402


class IndexDataset(Dataset):
    """Returns its index: the wrapper's cost is all there is."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class DrawsDataset(IndexDataset):
    """Returns one draw from each global RNG (so each must be seeded per sample)."""

    def __getitem__(self, i: int) -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(()))


def _time_getitem(ds: Dataset, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        ds[i]
    return time.perf_counter() - t


def _time_loader(ds: Dataset, n: int, workers: int, batch: int) -> float:
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=list)
    it = iter(loader)
    next(it)  # worker start-up outside the timer
    t = time.perf_counter()
    for _ in it:
        pass
    return time.perf_counter() - t


def measure(kind: str, path: str, n: int, reps: int) -> dict[str, float]:
    """Median µs per sample of the bare and the seeded dataset, interleaved."""
    base = (IndexDataset if kind == "index" else DrawsDataset)(n)
    sides = {"bare": base, "seeded": SeededDataset(base, seed=0)}
    batch = {"loader0": 32, "loader1": 256}.get(path, 1)
    counted = n - batch if path.startswith("loader") else n  # the first batch is untimed

    def once(ds: Dataset) -> float:
        if path == "getitem":
            return _time_getitem(ds, n)
        return _time_loader(ds, n, workers=int(path[-1]), batch=batch)

    times: dict[str, list[float]] = {k: [] for k in sides}
    for k in sides:  # warm-up
        once(sides[k])
    for r in range(reps):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for k in order:
            times[k].append(once(sides[k]) / counted * 1e6)
    bare, seeded = statistics.median(times["bare"]), statistics.median(times["seeded"])
    return {
        "bare_us": round(bare, 3),
        "seeded_us": round(seeded, 3),
        "cost_us": round(seeded - bare, 3),
        "seeded_min_us": round(min(times["seeded"]), 3),
        "seeded_max_us": round(max(times["seeded"]), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes (a few seconds)")
    ap.add_argument("--samples", type=int, default=None, help="samples per rep")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "seeded_dataset.json"))
    args = ap.parse_args()
    n = args.samples or (1024 if args.quick else 4096)
    reps = args.reps or (2 if args.quick else 5)
    torch.set_num_threads(1)
    rows = []
    print(f"{'dataset':8s} {'path':8s} {'bare':>8s} {'seeded':>8s} {'cost':>8s}  (µs/sample)")
    for kind in ("index", "draws"):
        for path in ("getitem", "loader0", "loader1"):
            r = measure(kind, path, n, reps)
            rows.append({"dataset": kind, "path": path, **r})
            print(
                f"{kind:8s} {path:8s} {r['bare_us']:8.2f} {r['seeded_us']:8.2f} "
                f"{r['cost_us']:8.2f}",
                flush=True,
            )
    result = {
        "benchmark": "seeded_dataset",
        "samples": n,
        "reps": reps,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "rows": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
