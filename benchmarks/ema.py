"""EMA update time per optimizer step: acchooks' EMAHook next to timm's ModelEmaV3.

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python benchmarks/ema.py --model resnet50

Three updates of the same model, interleaved rep by rep (rotating which goes first), so
machine noise hits all alike:

- acchooks' EMAHook (through ``after_train_iter``): one ``torch._foreach_lerp_`` over the
  parameters, lists collected once in ``before_run`` (the buffers are copied when the EMA
  is read, not per update);
- the floor: the same ``torch._foreach_lerp_`` over cached lists of the same parameters,
  written inline (no hook, no bookkeeping);
- timm's ``ModelEmaV3`` (foreach=True), which walks both state_dicts every step and lerps
  parameters and float buffers.

Prints a table and writes JSON (medians, min-max, ratios to timm and to the floor).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from types import SimpleNamespace

import timm
import torch
from timm.utils.model_ema import ModelEmaV3

from acchooks.hooks.ema import EMAHook


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "ema.json"))
    args = ap.parse_args()

    model = timm.create_model(args.model, pretrained=False).to(args.device)
    # a stand-in for the runner: EMAHook reads only these in before_run/after_train_iter
    runner = SimpleNamespace(unwrapped_model=model, step=0, logger=logging.getLogger("bench"))
    hook = EMAHook(decay=0.9998, warm_up=0)
    hook.before_run(runner)
    timm_ema = ModelEmaV3(model, decay=0.9998, device=torch.device(args.device))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def ours() -> None:
        runner.step += 1
        hook.after_train_iter(runner)

    def theirs() -> None:
        timm_ema.update(model, step=runner.step)

    live = [p for p in model.parameters() if p.is_floating_point()]  # what EMAHook averages
    cached = [p.detach().clone() for p in live]

    def bare() -> None:
        torch._foreach_lerp_(cached, live, 0.0002)

    fns = {"acchooks EMAHook": ours, "bare _foreach_lerp_": bare, "timm ModelEmaV3": theirs}
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for rep in range(args.warmup + args.reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            with torch.no_grad():
                sync()
                t0 = time.perf_counter()
                fns[name]()
                sync()
                dt = time.perf_counter() - t0
            if rep >= args.warmup:
                times[name].append(dt * 1e3)

    rows = {
        name: {"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t)}
        for name, t in times.items()
    }
    base, floor = rows["timm ModelEmaV3"]["median_ms"], rows["bare _foreach_lerp_"]["median_ms"]
    for r in rows.values():
        r["ratio_to_timm"] = r["median_ms"] / base
        r["ratio_to_bare"] = r["median_ms"] / floor
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"EMA update per step, {args.model} ({n_params / 1e6:.1f} M params) on {args.device}, "
        f"torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}, "
        f"{args.reps} interleaved reps"
    )
    print(f"{'':<20} {'median ms':>10} {'min-max ms':>16} {'vs timm':>8} {'vs bare':>8}")
    for name, r in rows.items():
        print(
            f"{name:<20} {r['median_ms']:>10.2f} {r['min_ms']:>7.2f}-{r['max_ms']:<8.2f} "
            f"{r['ratio_to_timm']:>8.2f} {r['ratio_to_bare']:>8.2f}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "model": args.model,
                "device": args.device,
                "params": n_params,
                "reps": args.reps,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "timm": timm.__version__,
                "results": rows,
            },
            f,
            indent=2,
        )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
