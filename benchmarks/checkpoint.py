"""Checkpoint save/load time and size: acchooks' format next to torch.save/torch.load,
Accelerate's save_state/load_state and bare safetensors, for the same model + optimizer state.

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python benchmarks/checkpoint.py

The state is timm's resnet50 (pretrained=False) and SGD with momentum after one step, so
every momentum buffer exists. acchooks runs with and without fsync and with and without
xxh3_128 checksums (written at save, verified at load). "safetensors save_file/load_file" is
the bare format: the same model and flattened optimizer tensors written with plain
``safetensors.torch.save_file`` into one directory and read back with ``load_file`` (no
staging directory, manifest, optimizer JSON or checks). Every method saves to a fresh
directory and loads back into the live model and optimizer; methods are interleaved rep by
rep (rotating which goes first) after warm-up, so machine noise hits all alike. Loads read
what was just written: from the page cache for the baselines, from the disk for acchooks
where its writer used ``O_DIRECT`` (which leaves nothing in the page cache; run with
``ACCHOOKS_DIRECT_IO=0`` to compare page cache to page cache). torch.save/torch.load (weights_only=True),
Accelerate and bare safetensors never fsync. Prints a table and writes JSON (medians,
min-max, ratios to torch.save/torch.load, bytes on disk).

``--loop`` adds the rows of :mod:`checkpoint_loop` (the synchronous durable save next to
``async_save=True`` inside a real training loop: stall per save, write time, steps/s) under
``"loop"``; ``--loop-only`` runs just those and replaces the ``"loop"`` rows of ``--out``
(keeping the other rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import accelerate
import safetensors.torch
import timm
import torch

from acchooks.checkpoint import (
    flatten_optimizer_state,
    load_checkpoint,
    save_checkpoint,
    unflatten_optimizer_state,
)
from acchooks.checkpoint.format import CHECKSUM


def _bytes(p: Path) -> int:
    return (
        p.stat().st_size
        if p.is_file()
        else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    )


def _update_loop(out: str, loop: dict) -> None:
    """``--loop-only``: replace the ``"loop"`` rows of ``out``, keeping its other rows."""
    data = {"model": "resnet50"}
    if os.path.isfile(out):
        with open(out) as fh:
            data = json.load(fh)
    data["loop"] = loop
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as fh:
        json.dump(data, fh, indent=1)
    print(f"updated the loop rows of {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument(
        "--tmp", default=None, help="where checkpoints are written (default: a temp dir)"
    )
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "checkpoint.json")
    )
    ap.add_argument("--loop", action="store_true", help="add the training-loop rows")
    ap.add_argument("--loop-only", action="store_true", help="only the training-loop rows")
    ap.add_argument("--every", type=int, default=15, help="loop rows: save every N iters")
    ap.add_argument("--iters", type=int, default=140, help="loop rows: iterations per run")
    ap.add_argument("--rounds", type=int, default=3, help="loop rows: interleaved rounds")
    args = ap.parse_args()
    loop = None
    if args.loop or args.loop_only:
        from checkpoint_loop import loop_rows

        loop = loop_rows(args.every, args.iters, args.rounds)
    if args.loop_only:
        _update_loop(args.out, loop)
        return

    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean().backward()
    opt.step()  # momentum buffers now exist
    acc = accelerate.Accelerator(cpu=True)
    amodel, aopt = acc.prepare(model, opt)  # same tensors, wrapped for save_state

    def ours(fsync: bool, checksum: bool) -> tuple[Callable, Callable]:
        def save(d: Path) -> None:
            save_checkpoint(
                d / "ckpt",
                model_state=model.state_dict(),
                optimizer_state=opt.state_dict(),
                fsync=fsync,
                checksum=checksum,
            )

        def load(d: Path) -> None:
            c = load_checkpoint(d / "ckpt", verify="checksum" if checksum else "size")
            model.load_state_dict(c.model_state)
            opt.load_state_dict(c.optimizer_state)

        return save, load

    def torch_save(d: Path) -> None:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, d / "ckpt.pth")

    def torch_load(d: Path) -> None:
        sd = torch.load(d / "ckpt.pth", map_location="cpu", weights_only=True)
        model.load_state_dict(sd["model"])
        opt.load_state_dict(sd["optimizer"])

    odata: dict = {}  # the optimizer's JSON part, which the floor keeps in memory

    def st_save(d: Path) -> None:
        otensors, odata["data"] = flatten_optimizer_state(opt.state_dict())
        (d / "ckpt").mkdir()
        safetensors.torch.save_file(
            model.state_dict(), d / "ckpt" / "model.safetensors", metadata={"format": "pt"}
        )
        safetensors.torch.save_file(
            otensors, d / "ckpt" / "optimizer.safetensors", metadata={"format": "pt"}
        )

    def st_load(d: Path) -> None:
        model.load_state_dict(safetensors.torch.load_file(d / "ckpt" / "model.safetensors"))
        otensors = safetensors.torch.load_file(d / "ckpt" / "optimizer.safetensors")
        opt.load_state_dict(unflatten_optimizer_state(otensors, odata["data"]))

    methods: dict[str, tuple[Callable, Callable]] = {
        "torch.save/load": (torch_save, torch_load),
        f"acchooks fsync+{CHECKSUM}": ours(True, True),
        "acchooks fsync": ours(True, False),
        f"acchooks {CHECKSUM}": ours(False, True),
        "acchooks": ours(False, False),
        "accelerate save/load_state": (
            lambda d: acc.save_state(str(d / "ckpt")),
            lambda d: acc.load_state(str(d / "ckpt")),
        ),
        "safetensors save_file/load_file": (st_save, st_load),
    }
    root = Path(args.tmp or tempfile.mkdtemp(prefix="acchooks-bench-"))
    times = {m: {"save": [], "load": []} for m in methods}
    sizes: dict[str, int] = {}
    names = list(methods)
    for rep in range(args.warmup + args.reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            save, load = methods[name]
            d = Path(tempfile.mkdtemp(dir=root))
            t0 = time.perf_counter()
            save(d)
            t1 = time.perf_counter()
            load(d)
            t2 = time.perf_counter()
            sizes[name] = _bytes(next(d.iterdir()))
            shutil.rmtree(d)
            if rep >= args.warmup:
                times[name]["save"].append(t1 - t0)
                times[name]["load"].append(t2 - t1)
    shutil.rmtree(root, ignore_errors=True)

    def stats(xs: list[float]) -> dict[str, float]:
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}

    base = {op: statistics.median(times["torch.save/load"][op]) for op in ("save", "load")}
    results = {
        m: {
            "save_s": stats(t["save"]),
            "load_s": stats(t["load"]),
            "bytes": sizes[m],
            "save_vs_torch": statistics.median(t["save"]) / base["save"],
            "load_vs_torch": statistics.median(t["load"]) / base["load"],
        }
        for m, t in times.items()
    }
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{args.model} ({n_params / 1e6:.1f}M params) + SGD momentum, {args.reps} reps after "
        f"{args.warmup} warm-up, interleaved; seconds: median [min-max]"
    )
    print(f"{'method':31s} {'save':>22s} {'x torch':>8s} {'load':>22s} {'x torch':>8s} {'MB':>8s}")
    for m, r in results.items():
        s, ld = r["save_s"], r["load_s"]
        print(
            f"{m:31s} {s['median']:7.3f} [{s['min']:.3f}-{s['max']:.3f}] {r['save_vs_torch']:8.2f} "
            f"{ld['median']:7.3f} [{ld['min']:.3f}-{ld['max']:.3f}] {r['load_vs_torch']:8.2f} "
            f"{r['bytes'] / 1e6:8.1f}"
        )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(
            {
                "model": args.model,
                "params": n_params,
                "optimizer": "SGD(momentum=0.9)",
                "reps": args.reps,
                "warmup": args.warmup,
                "results": results,
                **({"loop": loop} if loop is not None else {}),
                "env": {
                    "torch": torch.__version__,
                    "accelerate": accelerate.__version__,
                    "timm": timm.__version__,
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "threads": torch.get_num_threads(),
                },
            },
            fh,
            indent=1,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
