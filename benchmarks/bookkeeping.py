"""The loop's own work per train iteration, with the compute taken out.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bookkeeping.py [--quick] [--blocks N] [--ablate]

``loop_overhead.py`` measures the hooks' own cost as acchooks minus the minimal loop
around a real forward/backward/step; on a shared 2-core VM its per-block noise (tens of
us) is larger than the cost itself. Here both sides run the same nearly free calls, so
what remains is acchooks' bookkeeping: hook dispatch, the default hooks (LrUpdaterHook
step policy, OptimizerHook, IterTimerHook, TextLoggerHook every 50 iterations), the
train state, the log buffer and the preemption check.

* The batches are a prepared list of tensors (no DataLoader).
* The model is one ``Linear(4, 2)`` on a batch of 1 and the loss timm's/torch's
  cross-entropy: a forward of a few us, the same on both sides.
* ``accelerator.backward`` and the inner optimizer's ``step`` are no-ops on both sides
  (the two sides share one Accelerator and one optimizer), so no gradient is computed.

The minimal side is the README loop stepping the inner optimizer directly (as acchooks'
OptimizerHook does). Blocks of one epoch alternate (A B, B A, ...) in one process; the
per-block difference is acchooks' own cost per iteration. Prints a line and writes JSON.

``--ablate`` rotates more sides through the same blocks: the runner with each default
hook taken out (OptimizerHook replaced by a hook doing the minimal loop's backward, step
and zero_grad), with hook timing off, and with only that bare step hook (the runner's
own loop). Each line gives the side's cost against the minimal loop and, as "taken
out", how much less it costs than the full runner; the JSON gets an ``ablation`` key.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loop_overhead as lo  # noqa: E402 - the same acchooks build as the loop benchmark

EPOCH_LEN = 500


def _bare_step_hook(opt):
    """What the minimal loop does after the forward, as a hook (the ablation's stand-in
    for OptimizerHook): backward, the inner optimizer's step and zero_grad."""
    from acchooks.hooks.hook import Hook

    class BareStepHook(Hook):
        priority = 30

        def after_train_iter(self, runner) -> None:
            runner.accelerator.backward(runner.outputs["loss"])
            opt.optimizer.step()
            opt.optimizer.zero_grad(set_to_none=True)

    return BareStepHook()


def _variants(runner, opt) -> dict:
    """--ablate: hook tables for the same runner, one default hook taken out at a time."""
    from acchooks.hooks.table import HookTable

    full = runner.hooks

    def table(drop: set[str], bare_step: bool = False, timing: bool = True) -> HookTable:
        t = HookTable(timing=timing)
        for h in full.hooks:
            if type(h).__name__ not in drop:
                t.register(h, h.priority)
        if bare_step:
            t.register(_bare_step_hook(opt), 30)
        return t

    names = [type(h).__name__ for h in full.hooks]
    out = {"acchooks": full, "hook timing off": table(set(), timing=False)}
    for n in names:
        if n == "OptimizerHook":
            out["OptimizerHook -> bare step"] = table({n}, bare_step=True)
        else:
            out[f"without {n}"] = table({n})
    out["runner, bare step only"] = table(set(names), bare_step=True)
    return out


def _build(epoch_len: int):
    import torch
    from torch import nn

    work = tempfile.mkdtemp()
    w = dict(lo.WORKLOADS["mlp"], epoch_len=epoch_len)
    runner = lo._inproc_runner(
        w,
        os.path.join(work, "marker.json"),
        work,
        runner=dict(type="EpochBasedRunner", max_epochs=1),
        custom_hooks=[],
    )
    acc = runner.accelerator
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model, opt = acc.prepare(model, opt)
    runner.model, runner.optimizer = model, opt
    runner.hooks.get("LrUpdaterHook").before_run(runner)  # its base values: this optimizer
    acc.backward = lambda loss, **kwargs: None  # no gradients on either side
    opt.optimizer.step = lambda closure=None: None
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(1, 4, generator=g), torch.randint(0, 2, (1,))) for _ in range(epoch_len)
    ]
    runner.data_loaders["train"] = batches
    return runner, opt, batches


def _sides(runner, opt, batches, ablate: bool) -> dict:
    model, acc, criterion = runner.model, runner.accelerator, runner.criterion

    def minimal() -> float:
        t0 = time.thread_time()
        for x, y in batches:
            loss = criterion(model(x), y)
            acc.backward(loss)
            opt.optimizer.step()
            opt.optimizer.zero_grad(set_to_none=True)
        return (time.thread_time() - t0) / len(batches)

    def side(table):
        def run() -> float:
            runner.hooks = table
            runner.max_epochs = runner.epoch + 1
            t0 = time.thread_time()
            runner.train(batches)
            return (time.thread_time() - t0) / len(batches)

        return run

    tables = _variants(runner, opt) if ablate else {"acchooks": runner.hooks}
    return {"minimal": minimal, **{k: side(t) for k, t in tables.items()}}


def measure(blocks: int, epoch_len: int, ablate: bool = False) -> dict:
    runner, opt, batches = _build(epoch_len)
    runner.call_hook("before_run")
    sides = _sides(runner, opt, batches, ablate)
    res: dict[str, list[float]] = {k: [] for k in sides}
    for b in range(blocks + 1):  # block 0 warms every side up
        order = list(sides) if b % 2 else list(sides)[::-1]
        for name in order:
            dt = sides[name]()
            if b:
                res[name].append(dt * 1e6)

    def cost(name: str) -> dict:
        d = [a - m for a, m in zip(res[name], res["minimal"], strict=True)]
        q = statistics.quantiles(d, n=4)
        return {"median": statistics.median(d), "q1": q[0], "q3": q[2]}

    out = {
        "blocks": blocks,
        "iters_per_block": epoch_len,
        "acchooks_us_per_iter": statistics.median(res["acchooks"]),
        "minimal_us_per_iter": statistics.median(res["minimal"]),
        "own_cost_us_per_iter": cost("acchooks"),
        "clock": "thread_time",
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if ablate:
        out["ablation"] = {
            k: {"us_per_iter": statistics.median(v), "vs_minimal": cost(k)}
            for k, v in res.items()
            if k != "minimal"
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few blocks (smoke test)")
    ap.add_argument(
        "--blocks", type=int, default=None, help="blocks per side (default 40; 20 with --ablate)"
    )
    ap.add_argument(
        "--ablate",
        action="store_true",
        help="also run the runner with each default hook taken out (OptimizerHook replaced "
        "by a bare backward/step/zero_grad hook), with hook timing off, and with only the "
        "bare step; prints each one's cost against the minimal loop",
    )
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bookkeeping.json"))
    args = ap.parse_args()
    blocks = args.blocks or (2 if args.quick else (20 if args.ablate else 40))
    r = measure(blocks, 20 if args.quick else EPOCH_LEN, args.ablate)
    c = r["own_cost_us_per_iter"]
    print(
        f"acchooks {r['acchooks_us_per_iter']:.1f} us/iter, minimal {r['minimal_us_per_iter']:.1f}"
        f" us/iter: acchooks' own cost {c['median']:+.1f} us/iter "
        f"[q1 {c['q1']:+.1f}, q3 {c['q3']:+.1f}] over {blocks} blocks of {r['iters_per_block']}"
    )
    full = r.get("ablation", {}).get("acchooks")
    for k, v in r.get("ablation", {}).items():
        c = v["vs_minimal"]
        part = (
            "" if v is full else f"; taken out: {full['vs_minimal']['median'] - c['median']:+.1f}"
        )
        print(
            f"  {k:28s} {v['us_per_iter']:7.1f} us/iter, vs minimal {c['median']:+6.1f} "
            f"[{c['q1']:+.1f}, {c['q3']:+.1f}]{part}"
        )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
