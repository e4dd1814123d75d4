"""Train steps/s of a tiny timm model compiled by acchooks' ``compile`` switch, next to eager.

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 python benchmarks/compile.py
    OMP_WAIT_POLICY=PASSIVE python benchmarks/compile.py --backend aot_eager --quick

Two copies of the same model (same initial weights), each with its own SGD optimizer:
one eager, one compiled by :func:`acchooks.runner.speed.compile_model` (what
``compile=dict(backend=..., mode=...)`` does to the prepared model). One train step is
forward, cross-entropy, backward, SGD step and zero_grad on a fixed batch. The first
compiled steps (tracing and code generation; train mode only) are timed on their own and
reported as ``compile_s``; then blocks of ``--steps`` steps alternate between the two
sides rep by rep (rotating which goes first), so machine noise hits both alike.

Prints a table and writes JSON (steps/s medians, min-max, the compiled/eager ratio).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time

import timm
import torch
import torch.nn.functional as F

from acchooks.runner.speed import compile_model


def _side(model: torch.nn.Module, lr: float):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="test_resnet")
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--mode", default=None)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--steps", type=int, default=10, help="train steps per timed block")
    ap.add_argument("--warmup", type=int, default=3, help="compiled steps before timing")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: as set)")
    ap.add_argument("--quick", action="store_true", help="smoke sizes")
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "compile.json")
    )
    args = ap.parse_args()
    if args.quick:
        args.reps, args.steps, args.warmup, args.img_size, args.batch = 3, 2, 2, 32, 8
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    eager_model = timm.create_model(args.model, pretrained=False, num_classes=10)
    compiled_model = timm.create_model(args.model, pretrained=False, num_classes=10)
    compiled_model.load_state_dict(eager_model.state_dict())
    settings = {"backend": args.backend, **({"mode": args.mode} if args.mode else {})}
    compiled_model = compile_model(compiled_model, {"compile": settings}, logging.getLogger())
    x = torch.randn(args.batch, 3, args.img_size, args.img_size)
    y = torch.randint(0, 10, (args.batch,))
    fns = {"eager": _side(eager_model, 0.01), "compiled": _side(compiled_model, 0.01)}

    t0 = time.perf_counter()
    for _ in range(args.warmup):  # the first call compiles
        fns["compiled"](x, y)
    compile_s = time.perf_counter() - t0
    for _ in range(args.warmup):
        fns["eager"](x, y)

    rates: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for rep in range(args.reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            t = time.perf_counter()
            for _ in range(args.steps):
                fns[name](x, y)
            rates[name].append(args.steps / (time.perf_counter() - t))

    rows = {
        n: {"median_steps_s": statistics.median(r), "min_steps_s": min(r), "max_steps_s": max(r)}
        for n, r in rates.items()
    }
    ratio = rows["compiled"]["median_steps_s"] / rows["eager"]["median_steps_s"]
    print(
        f"train steps/s, {args.model} batch {args.batch}x3x{args.img_size}x{args.img_size} on "
        f"CPU, torch {torch.__version__}, threads {torch.get_num_threads()}, compile {settings}, "
        f"{args.reps} interleaved reps of {args.steps} steps"
    )
    print(f"{'':<10} {'median':>9} {'min-max':>17}")
    for name, r in rows.items():
        print(
            f"{name:<10} {r['median_steps_s']:>9.1f} "
            f"{r['min_steps_s']:>8.1f}-{r['max_steps_s']:<8.1f}"
        )
    print(
        f"compiled / eager steps/s: {ratio:.2f}x; compile (first {args.warmup} steps): {compile_s:.1f} s"
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "model": args.model,
                "batch": args.batch,
                "img_size": args.img_size,
                "compile": settings,
                "reps": args.reps,
                "steps_per_rep": args.steps,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "timm": timm.__version__,
                "compile_s": compile_s,
                "results": rows,
                "ratio_compiled_to_eager": ratio,
            },
            f,
            indent=2,
        )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
