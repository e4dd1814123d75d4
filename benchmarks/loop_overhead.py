"""Loop overhead: acchooks' runner next to a minimal hand-written Accelerate loop.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/loop_overhead.py [--quick] [--threads 1]

Two comparisons, both printed:

1. **Separate processes** (steps/s, start-up, peak RSS): each run is a fresh subprocess
   and the two sides alternate (A B, B A, ...). The acchooks side has the default hooks
   (LrUpdaterHook step policy, OptimizerHook, IterTimerHook, TextLoggerHook every 50
   iterations; no eval, no checkpoints). The minimal side is the loop from Accelerate's
   README: the same Accelerator settings, model, ``SGD(momentum=0.9)``, DataLoader and
   thread count. A marker called once per iteration after the optimizer step (a
   LOWEST-priority hook in acchooks, a function call in the minimal loop) records the
   CLOCK_MONOTONIC time of the first step, of the end of warm-up and of the last measured
   iteration; the child reports those and its peak RSS.
2. **One process, rotated blocks** (``mlp`` only): epochs of the acchooks runner, of the
   minimal loop, and of the minimal loop stepping the inner optimizer directly (as
   acchooks' OptimizerHook does, skipping AcceleratedOptimizer's per-step checks) take
   turns; per-block differences give acchooks' difference to the minimal loop and the
   hooks' own cost. Differences between processes (memory layout, CPU frequency), which
   dominate the per-process comparison on a noisy VM, cancel within a block.

Workloads: ``mlp`` (a 2-layer MLP on 16 px tensors from memory, where overhead is
visible) and ``resnet18`` at 64 px through the real CLI with acchooks' Shapes data.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIDES = ("acchooks", "minimal")

# epoch_len * epochs == warmup + iters, so the measured window ends with the run.
# "mlp" (BenchMLP: 768 -> 64 -> 4 on 16 px images) makes per-iteration overhead visible;
# timm's test_resnet is ~20 ms per step on this machine, which would bury it.
# data="tensors": both sides iterate the same prepared DataLoader over an in-memory
# TensorDataset (the acchooks side is built in-process as train.py builds it, then its
# train loader is swapped), so that generating Shapes images and seeding them
# (benchmarks/seeded_dataset.py) do not bury the loop's own cost. data="shapes": the real
# CLI and data.
WORKLOADS = {
    "mlp": dict(
        model="BenchMLP", img=16, batch=8, epoch_len=200, warmup=200, iters=2000, data="tensors"
    ),
    "resnet18": dict(
        model="resnet18", img=64, batch=16, epoch_len=18, warmup=3, iters=15, data="shapes"
    ),
}
QUICK = {  # the smoke test: small, a few iterations
    "mlp": dict(
        model="BenchMLP", img=16, batch=8, epoch_len=10, warmup=5, iters=15, data="tensors"
    ),
}
NUM_CLASSES, SEED, LR, LOG_INTERVAL = 4, 0, 0.01, 50


# ------------------------------------------------------------------ the marker (children)
class _Marker:
    """Timestamps after iterations 1, warmup and warmup+iters; writes the result once."""

    def __init__(self, out: str, warmup: int, iters: int):
        import torch

        self.out, self.warmup, self.iters, self.n = out, warmup, iters, 0
        self.t: dict[str, float] = {}
        self.cuda = torch.cuda.is_available()
        self.sync = torch.cuda.synchronize if self.cuda else (lambda: None)

    def __call__(self) -> None:
        self.n += 1
        n = self.n
        if n == 1 or n == self.warmup or n == self.warmup + self.iters:
            self.sync()
            now = time.monotonic()
            if n == 1:
                self.t["first_step"] = now
                # CPU seconds of this process so far: the start-up work without the time
                # spent waiting for a CPU, which dominates wall-time noise on a shared VM
                self.t["first_step_cpu"] = time.process_time()
            if n == self.warmup:
                self.t["warm"] = now
            if n == self.warmup + self.iters:
                self.t["end"] = now

    def write(self) -> None:
        import torch

        res = {
            "first_step_monotonic": self.t["first_step"],
            "startup_cpu_s": self.t["first_step_cpu"],
            "steady_s": self.t["end"] - self.t["warm"],
            "iters": self.iters,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads(),
            "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if self.cuda else 0.0,
        }
        with open(self.out, "w") as f:
            json.dump(res, f)


def bench_mlp(img: int, num_classes: int = NUM_CLASSES):
    """A 2-layer MLP on ``3 x img x img`` images: a step of ~0.1 ms, so overhead shows."""
    from torch import nn

    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * img * img, 64), nn.ReLU(), nn.Linear(64, num_classes)
    )


def _build_model(w: dict):
    if w["model"] == "BenchMLP":
        return bench_mlp(w["img"], w.get("num_classes", NUM_CLASSES))
    import timm

    return timm.create_model(
        w["model"], pretrained=False, num_classes=w.get("num_classes", NUM_CLASSES)
    )


def _register_hook() -> None:
    """``BenchMarkerHook`` and ``BenchMLP`` for the acchooks side (via custom_imports)."""
    from acchooks import HOOKS, MODELS, Hook

    if "BenchMarkerHook" in HOOKS:
        return

    @MODELS.register_module(name="BenchMLP")
    def _mlp(img: int, num_classes: int = NUM_CLASSES):
        return bench_mlp(img, num_classes)

    @HOOKS.register_module()
    class BenchMarkerHook(Hook):
        def __init__(self, out: str, warmup: int, iters: int):
            self.marker = _Marker(out, warmup, iters)

        def after_train_iter(self, runner) -> None:
            self.marker()

        def after_run(self, runner) -> None:
            self.marker.write()


if __name__ != "__main__":  # imported by train.py via custom_imports
    _register_hook()


def _config(w: dict, out: str, work_dir: str) -> dict:
    epochs = (w["warmup"] + w["iters"]) // w["epoch_len"]
    ncls = w.get("num_classes", NUM_CLASSES)
    cfg = dict(
        model=(
            dict(type="BenchMLP", img=w["img"], num_classes=ncls)
            if w["model"] == "BenchMLP"
            else dict(
                type="TimmClassifier", model_name=w["model"], num_classes=ncls, pretrained=False
            )
        ),
        data=dict(
            samples_per_gpu=w["batch"],
            workers_per_gpu=0,
            train=dict(
                type="Shapes",
                num_samples=w["batch"] * w["epoch_len"],
                img_size=w["img"],
                num_classes=ncls,
                seed=0,
                is_training=True,
            ),
        ),
        optimizer=dict(type="SGD", lr=LR, momentum=0.9),
        optimizer_config=dict(grad_clip=None),
        lr_config=dict(policy="step", step=[10_000]),
        runner=dict(type="EpochBasedRunner", max_epochs=epochs),
        log_config=dict(interval=LOG_INTERVAL, hooks=[dict(type="TextLoggerHook")]),
        workflow=[("train", 1)],
        accelerator=dict(mixed_precision=w.get("precision", "no")),
        custom_imports=dict(imports=["loop_overhead"], allow_failed_imports=False),
        custom_hooks=[
            dict(
                type="BenchMarkerHook",
                out=out,
                warmup=w["warmup"],
                iters=w["iters"],
                priority="LOWEST",
            )
        ],
        work_dir=work_dir,
        seed=SEED,
    )
    return cfg


def tensor_loader(w: dict):
    """The in-memory DataLoader both sides use for data="tensors"."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator()
    g.manual_seed(SEED)
    n = w["batch"] * w["epoch_len"]
    x = torch.randn(n, 3, w["img"], w["img"], generator=g)
    y = torch.randint(0, w.get("num_classes", NUM_CLASSES), (n,), generator=g)
    return DataLoader(
        TensorDataset(x, y),
        batch_size=w["batch"],
        shuffle=True,
        num_workers=0,
        drop_last=False,
        pin_memory=False,
        persistent_workers=False,
        generator=g,
    )


def _inproc_runner(w: dict, out: str, work_dir: str, **overrides):
    """acchooks built as train.py builds it (``overrides`` replace config keys), with the
    train loader swapped for the tensors."""
    from acchooks.config import Config
    from acchooks.config.schema import check_or_raise
    from acchooks.logging import get_logger
    from acchooks.runner import build_runner

    _register_hook()
    raw = {**_config(w, out, work_dir), **overrides}
    raw.pop("custom_imports")
    cfg = Config(raw, filename=os.path.join(work_dir, "bench_cfg.py"))
    check_or_raise(cfg)
    os.makedirs(work_dir, exist_ok=True)
    runner = build_runner(cfg, get_logger(os.path.join(work_dir, "run.log")), "bench")
    runner.data_loaders["train"] = runner.accelerator.prepare(tensor_loader(w))
    return runner


def run_acchooks_inproc(w: dict, out: str, work_dir: str) -> None:
    runner = _inproc_runner(w, out, work_dir)
    if w.get("channels_last"):
        import torch

        runner.model.to(memory_format=torch.channels_last)
    runner.run()


def run_minimal(w: dict, out: str) -> None:
    """The hand-written loop: Accelerate's README loop with build_accelerator's settings."""
    import torch
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from torch.utils.data import DataLoader

    from acchooks.datasets.seeded import SeededDataset
    from acchooks.datasets.shapes import Shapes

    acc = Accelerator(
        mixed_precision=w.get("precision", "no"),
        gradient_accumulation_steps=1,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        dataloader_config=DataLoaderConfiguration(
            split_batches=False, even_batches=True, use_seedable_sampler=True, data_seed=SEED
        ),
    )
    set_seed(SEED)
    model = _build_model(w)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    if w["data"] == "tensors":
        loader, dataset = tensor_loader(w), None
    else:  # build_dataloader's arguments for a train split
        dataset = SeededDataset(
            Shapes(
                num_samples=w["batch"] * w["epoch_len"],
                img_size=w["img"],
                num_classes=NUM_CLASSES,
                seed=0,
                is_training=True,
            ),
            SEED,
        )
        g = torch.Generator()
        g.manual_seed(SEED)
        loader = DataLoader(
            dataset,
            batch_size=w["batch"],
            shuffle=True,
            num_workers=0,
            drop_last=False,
            pin_memory=False,
            persistent_workers=False,
            generator=g,
        )
    model, opt, loader = acc.prepare(model, opt, loader)
    if w.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    criterion = torch.nn.CrossEntropyLoss()
    mark = _Marker(out, w["warmup"], w["iters"])
    model.train()
    for epoch in range(0, (w["warmup"] + w["iters"]) // w["epoch_len"]):
        loader.set_epoch(epoch)
        if dataset is not None:
            dataset.set_epoch(epoch)
        for x, y in loader:
            loss = criterion(model(x), y)
            acc.backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
            mark()
    mark.write()


def _clock() -> float:
    """The paired blocks' clock: wall time; ACCHOOKS_BENCH_CLOCK=cpu uses this thread's CPU
    time instead (both sides run on one thread with OMP_NUM_THREADS=1)."""
    return (
        time.thread_time()
        if os.environ.get("ACCHOOKS_BENCH_CLOCK") == "cpu"
        else time.perf_counter()
    )


def run_paired_blocks(w: dict, out: str, work_dir: str, blocks: int) -> None:
    """Both sides in ONE process, on the same Accelerator: epochs of the acchooks runner
    (``runner.run()`` for one more epoch each time) and epochs of the minimal loop
    alternate (A B, B A, ...); each block's steady time per iteration is taken between its
    first and last optimizer step, so run()'s start and end are outside it. Differences
    between processes (memory layout, CPU frequency), which dominate the per-process
    comparison on a noisy VM, cancel within a pair."""
    import torch

    from acchooks import HOOKS, Hook

    if "BenchBlockHook" not in HOOKS:

        @HOOKS.register_module()
        class BenchBlockHook(Hook):  # noqa: F841 - registered
            def __init__(self):
                self.ts: list[float] = []

            def after_train_iter(self, runner) -> None:
                self.ts.append(_clock())

    runner = _inproc_runner(
        w,
        out,
        work_dir,
        runner=dict(type="EpochBasedRunner", max_epochs=1),
        custom_hooks=[dict(type="BenchBlockHook", priority="LOWEST")],
    )
    acc = runner.accelerator
    marker = runner.hooks.get("BenchBlockHook")

    torch.manual_seed(SEED)
    model = _build_model(w)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    model, opt, loader = acc.prepare(model, opt, tensor_loader(w))
    criterion = torch.nn.CrossEntropyLoss()
    model.train()

    def minimal_epoch(epoch: int, direct: bool = False) -> float:
        """The minimal loop; ``direct``: stepping the inner optimizer as acchooks'
        OptimizerHook does (no AcceleratedOptimizer per-step checks), which leaves the
        hooks' own cost as the difference."""
        loader.set_epoch(epoch)
        step = opt.optimizer.step if direct else opt.step
        zero_grad = opt.optimizer.zero_grad if direct else opt.zero_grad
        ts = []
        for x, y in loader:
            loss = criterion(model(x), y)
            acc.backward(loss)
            step()
            zero_grad(set_to_none=True)
            ts.append(_clock())
        return (ts[-1] - ts[0]) / (len(ts) - 1)

    def acchooks_epoch() -> float:
        runner.max_epochs = runner.epoch + 1
        marker.ts = []
        runner.run()
        return (marker.ts[-1] - marker.ts[0]) / (len(marker.ts) - 1)

    sides = {
        "acchooks": acchooks_epoch,
        "minimal": minimal_epoch,
        "minimal_direct": lambda b: minimal_epoch(b, direct=True),
    }
    names = list(sides)
    res: dict[str, list[float]] = {name: [] for name in names}
    for b in range(blocks + 1):  # block 0 warms every side up
        k = b % len(names)
        for side in names[k:] + names[:k]:
            dt = sides[side]() if side == "acchooks" else sides[side](b)
            if b:
                res[side].append(dt * 1e6)
    with open(out, "w") as f:
        json.dump(res, f)


def paired_blocks(wname: str, w: dict, procs: int, blocks: int, threads: int, tmp: str) -> dict:
    """``procs`` processes of :func:`run_paired_blocks`; the per-block differences pooled:
    acchooks minus the minimal loop (the user-facing difference) and minus the minimal
    loop that steps the inner optimizer as acchooks does (the hooks' own cost)."""
    pooled: dict[str, list[float]] = {"acchooks": [], "minimal": [], "minimal_direct": []}
    for _ in range(procs):
        out = tempfile.mktemp(dir=tmp, suffix=".json")
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            "paired",
            "--out",
            out,
            "--workload-json",
            json.dumps(w),
            "--work-dir",
            tempfile.mkdtemp(dir=tmp),
            "--blocks",
            str(blocks),
        ]
        r = _run_child(cmd, out, threads, tmp, f"paired {wname}")
        for k in pooled:
            pooled[k] += r[k]
    a = pooled["acchooks"]
    return {
        "processes": procs,
        "blocks_per_process": blocks,
        "iters_per_block": w["epoch_len"],
        "acchooks_us_per_iter": _stats(a),
        "minimal_us_per_iter": _stats(pooled["minimal"]),
        "minimal_direct_us_per_iter": _stats(pooled["minimal_direct"]),
        "overhead_us_per_iter": _stats([x - m for x, m in zip(a, pooled["minimal"], strict=True)]),
        "hooks_us_per_iter": _stats(
            [x - m for x, m in zip(a, pooled["minimal_direct"], strict=True)]
        ),
        "time_ratio": statistics.median(a) / statistics.median(pooled["minimal"]),
    }


def _run_child(cmd: list[str], out: str, threads: int, tmp: str, what: str) -> dict:
    """Run one benchmark child process; returns the JSON it wrote to ``out``."""
    proc = subprocess.run(
        cmd,
        env=_child_env(threads),
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0 or not os.path.exists(out):
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    with open(out) as f:
        return json.load(f)


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_WAIT_POLICY=env.get("OMP_WAIT_POLICY", "PASSIVE"),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONPATH=os.pathsep.join([HERE, ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def run_side(side: str, wname: str, w: dict, threads: int, tmp: str) -> dict:
    """One fresh process of ``side``; returns its marker result plus the start-up time."""
    out = tempfile.mktemp(dir=tmp, suffix=".json")
    work_dir = tempfile.mkdtemp(dir=tmp)
    if side == "acchooks" and w["data"] == "shapes":  # the real CLI
        cfg = os.path.join(work_dir, "bench_cfg.py")
        with open(cfg, "w") as f:
            f.write("".join(f"{k} = {v!r}\n" for k, v in _config(w, out, work_dir).items()))
        cmd = [sys.executable, os.path.join(ROOT, "train.py"), "--config", cfg]
    else:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            side,
            "--out",
            out,
            "--workload-json",
            json.dumps(w),
            "--work-dir",
            work_dir,
        ]
    t0 = time.monotonic()
    res = _run_child(cmd, out, threads, tmp, f"{side} {wname}")
    res["startup_s"] = res.pop("first_step_monotonic") - t0
    res["us_per_iter"] = res["steady_s"] / res["iters"] * 1e6
    res["steps_per_s"] = res["iters"] / res["steady_s"]
    return res


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def bench(workloads: dict[str, dict], reps: int, threads: int) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="acchooks-loop-") as tmp:
        for wname, w in workloads.items():
            runs: dict[str, list[dict]] = {s: [] for s in SIDES}
            for rep in range(reps):
                for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                    runs[side].append(run_side(side, wname, w, threads, tmp))
            sides = {
                s: {
                    k: _stats([r[k] for r in rs])
                    for k in (
                        "us_per_iter",
                        "steps_per_s",
                        "startup_s",
                        "startup_cpu_s",
                        "maxrss_mb",
                    )
                }
                for s, rs in runs.items()
            }
            for s, rs in runs.items():
                sides[s]["threads"] = rs[0]["threads"]
            a, m = sides["acchooks"], sides["minimal"]
            paired = (
                paired_blocks(
                    wname,
                    w,
                    procs=2 if reps > 1 else 1,
                    blocks=max(2, 2 * reps),
                    threads=threads,
                    tmp=tmp,
                )
                if w["data"] == "tensors"
                else None
            )
            results[wname] = {
                "same_process": paired,
                "workload": w,
                "reps": reps,
                "sides": sides,
                "overhead_us_per_iter": a["us_per_iter"]["median"] - m["us_per_iter"]["median"],
                "time_ratio": a["us_per_iter"]["median"] / m["us_per_iter"]["median"],
                "steps_per_s_ratio": a["steps_per_s"]["median"] / m["steps_per_s"]["median"],
                "startup_delta_s": a["startup_s"]["median"] - m["startup_s"]["median"],
                "startup_ratio": a["startup_s"]["median"] / m["startup_s"]["median"],
                "startup_cpu_delta_s": a["startup_cpu_s"]["median"] - m["startup_cpu_s"]["median"],
                "rss_ratio": a["maxrss_mb"]["median"] / m["maxrss_mb"]["median"],
            }
    return results


def print_table(results: dict) -> None:
    def cell(s: dict, fmt: str) -> str:
        return f"{s['median']:{fmt}} [{s['min']:{fmt}}-{s['max']:{fmt}}]"

    print(
        f"{'workload':9s} {'side':9s} {'us/iter':>26s} {'steps/s':>22s} {'start-up s':>20s} "
        f"{'start-up CPU s':>20s} {'peak RSS MB':>22s}"
    )
    for wname, r in results.items():
        for s, v in r["sides"].items():
            print(
                f"{wname:9s} {s:9s} {cell(v['us_per_iter'], '8.0f'):>26s} "
                f"{cell(v['steps_per_s'], '6.1f'):>22s} {cell(v['startup_s'], '5.2f'):>20s} "
                f"{cell(v['startup_cpu_s'], '5.2f'):>20s} {cell(v['maxrss_mb'], '6.0f'):>22s}"
            )
        p = r.get("same_process")
        if p:
            o, h = p["overhead_us_per_iter"], p["hooks_us_per_iter"]
            print(
                f"{wname:9s} same process, {p['processes']} x {p['blocks_per_process']} "
                f"rotated blocks of {p['iters_per_block']} iterations (us/iter, median "
                f"[min to max] of the per-block differences):"
            )
            print(
                f"{'':9s}   acchooks - minimal loop = {o['median']:+.1f} [{o['min']:+.1f} to "
                f"{o['max']:+.1f}] (time x{p['time_ratio']:.3f})"
            )
            print(
                f"{'':9s}   acchooks - minimal loop stepping the inner optimizer "
                f"(the hooks' own cost) = {h['median']:+.1f} [{h['min']:+.1f} to {h['max']:+.1f}]"
            )
        print(
            f"{wname:9s} acchooks/minimal: {r['overhead_us_per_iter']:+.0f} us/iter "
            f"(time x{r['time_ratio']:.3f}, steps/s x{r['steps_per_s_ratio']:.3f}), "
            f"start-up {r['startup_delta_s']:+.2f} s (x{r['startup_ratio']:.2f}; CPU "
            f"{r['startup_cpu_delta_s']:+.2f} s), "
            f"RSS x{r['rss_ratio']:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one rep (smoke test)")
    ap.add_argument("--reps", type=int, default=None, help="runs per side (default 5, quick 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads, both sides")
    ap.add_argument("--workloads", default=None, help="comma-separated (default: all)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "loop_overhead.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--workload-json", help=argparse.SUPPRESS)
    ap.add_argument("--work-dir", help=argparse.SUPPRESS)
    ap.add_argument("--blocks", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "paired":
        run_paired_blocks(json.loads(args.workload_json), args.out, args.work_dir, args.blocks)
        return
    if args.child == "minimal":
        run_minimal(json.loads(args.workload_json), args.out)
        return
    if args.child == "acchooks":
        run_acchooks_inproc(json.loads(args.workload_json), args.out, args.work_dir)
        return
    table = QUICK if args.quick else WORKLOADS
    workloads = {k: table[k] for k in (args.workloads or ",".join(table)).split(",")}
    reps = args.reps or (1 if args.quick else 4)
    results = bench(workloads, reps, args.threads)
    import accelerate
    import timm
    import torch

    env = {
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "load_avg": os.getloadavg(),
        "quick": args.quick,
    }
    print(
        f"loop overhead, {reps} interleaved runs per side, {args.threads} thread(s), "
        f"median [min-max]; load avg {env['load_avg'][0]:.1f} on {env['cpus']} CPUs"
    )
    print_table(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"results": results, "env": env}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
