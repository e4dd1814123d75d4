"""The loop's own work per train iteration, with the compute taken out.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bookkeeping.py [--quick] [--blocks N]

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


def measure(blocks: int, epoch_len: int) -> dict:
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
    criterion = runner.criterion

    def minimal() -> float:
        t0 = time.thread_time()
        for x, y in batches:
            loss = criterion(model(x), y)
            acc.backward(loss)
            opt.optimizer.step()
            opt.optimizer.zero_grad(set_to_none=True)
        return (time.thread_time() - t0) / len(batches)

    def acchooks() -> float:
        runner.max_epochs = runner.epoch + 1
        t0 = time.thread_time()
        runner.train(batches)
        return (time.thread_time() - t0) / len(batches)

    runner.call_hook("before_run")
    sides = {"acchooks": acchooks, "minimal": minimal}
    res: dict[str, list[float]] = {k: [] for k in sides}
    for b in range(blocks + 1):  # block 0 warms both up
        order = list(sides) if b % 2 else list(sides)[::-1]
        for name in order:
            dt = sides[name]()
            if b:
                res[name].append(dt * 1e6)
    diffs = [a - m for a, m in zip(res["acchooks"], res["minimal"], strict=True)]
    q = statistics.quantiles(diffs, n=4)
    return {
        "blocks": blocks,
        "iters_per_block": epoch_len,
        "acchooks_us_per_iter": statistics.median(res["acchooks"]),
        "minimal_us_per_iter": statistics.median(res["minimal"]),
        "own_cost_us_per_iter": {"median": statistics.median(diffs), "q1": q[0], "q3": q[2]},
        "clock": "thread_time",
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few blocks (smoke test)")
    ap.add_argument("--blocks", type=int, default=None, help="blocks per side (default 40)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bookkeeping.json"))
    args = ap.parse_args()
    blocks = args.blocks or (2 if args.quick else 40)
    r = measure(blocks, 20 if args.quick else EPOCH_LEN)
    c = r["own_cost_us_per_iter"]
    print(
        f"acchooks {r['acchooks_us_per_iter']:.1f} us/iter, minimal {r['minimal_us_per_iter']:.1f}"
        f" us/iter: acchooks' own cost {c['median']:+.1f} us/iter "
        f"[q1 {c['q1']:+.1f}, q3 {c['q3']:+.1f}] over {blocks} blocks of {r['iters_per_block']}"
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
