"""Run every CPU benchmark, one after the other, each writing <out-dir>/<name>.json.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/run_all.py            # ~8 minutes, 2 cores
    OMP_WAIT_POLICY=PASSIVE python benchmarks/run_all.py --quick    # smoke sizes, ~1 minute
    python benchmarks/run_all.py --gpu                              # also gpu.py (needs CUDA)

Full runs write into benchmarks/results/, quick runs into benchmarks/results/quick/ (so a
smoke run never overwrites measured numbers). Each script runs in its own process with
the same environment (OMP_WAIT_POLICY=PASSIVE unless set; OMP_NUM_THREADS=1 unless set).
Stops at the first failure and says which script failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (extra args for a full run, extra args for --quick); ema/checkpoint have no --quick
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "dispatch": ([], ["--quick"]),
    "config_errors": ([], ["--quick"]),
    "loop_overhead": ([], ["--quick"]),
    "bookkeeping": ([], ["--quick"]),
    "ema": ([], ["--model", "resnet18", "--reps", "3", "--warmup", "1"]),
    "checkpoint": ([], ["--model", "resnet18", "--reps", "1", "--warmup", "0"]),
    "mixup": ([], ["--quick"]),
    "compile": ([], ["--quick", "--backend", "aot_eager"]),  # quick: no C++ compile
    "seeded_dataset": ([], ["--quick"]),
    "loader": ([], ["--quick"]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes (seconds per script)")
    ap.add_argument("--gpu", action="store_true", help="also run gpu.py (needs CUDA)")
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join(SCRIPTS))
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()
    out_dir = args.out_dir or os.path.join(HERE, "results", *(["quick"] if args.quick else []))
    os.makedirs(out_dir, exist_ok=True)
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS and n != "gpu"]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(SCRIPTS)}")
    todo = [(n, SCRIPTS[n][1] if args.quick else SCRIPTS[n][0]) for n in names if n in SCRIPTS]
    if args.gpu or "gpu" in names:
        todo.append(("gpu", ["--quick"] if args.quick else []))
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(HERE), env.get("PYTHONPATH")) if p
    )
    for name, extra in todo:
        out = os.path.join(out_dir, f"{name}.json")
        cmd = [sys.executable, os.path.join(HERE, f"{name}.py"), *extra, "--out", out]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, env=env)
        print(f"== {name}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            print(f"run_all: {name} failed with exit status {rc}", file=sys.stderr)
            return rc
    print(f"results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
