"""GPU throughput and peak memory: acchooks next to the minimal Accelerate loop, one card.

    python benchmarks/gpu.py            # on a machine with CUDA; ~5 minutes on one H100/H200
    python benchmarks/gpu.py --quick    # a few iterations per case (smoke run)

resnet50 at 224 px, batch 128 (``--batch``), SGD momentum, for each of bf16 and fp16
mixed precision with channels_last off and on: the acchooks runner (default hooks, text
logger every 50 iterations, built as train.py builds it) and the minimal loop of
``loop_overhead.py``, each case a fresh process, the two sides alternating. Both sides
iterate the same in-memory TensorDataset through Accelerate's prepared DataLoader, so
the host-to-device copy is in both. Images/s are timed between CUDA-synchronised marks
after warm-up; peak memory is ``torch.cuda.max_memory_allocated``. Without CUDA it exits
with status 2 and says so. Prints a table and writes results/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXIT_NO_CUDA = 2


def _loop_overhead():
    """The subprocess machinery of loop_overhead.py (same directory)."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import loop_overhead

    return loop_overhead


def plan(quick: bool = False, batch: int = 128, reps: int | None = None) -> list[dict]:
    """Every case to run, in run order (sides alternate within each configuration)."""
    reps = reps or (1 if quick else 2)
    warmup, iters, epoch_len = (3, 5, 4) if quick else (20, 60, 10)
    epoch_len = epoch_len if (warmup + iters) % epoch_len == 0 else warmup + iters
    cases = []
    for precision in ("bf16", "fp16"):
        for channels_last in (False, True):
            for rep in range(reps):
                sides = ("acchooks", "minimal") if rep % 2 == 0 else ("minimal", "acchooks")
                for side in sides:
                    cases.append(
                        dict(
                            side=side,
                            precision=precision,
                            channels_last=channels_last,
                            rep=rep,
                            model="resnet50",
                            img=224,
                            batch=batch,
                            num_classes=1000,
                            warmup=warmup,
                            iters=iters,
                            epoch_len=epoch_len,
                            data="tensors",
                        )
                    )
    return cases


def summarize(rows: list[dict]) -> list[dict]:
    """Per (precision, channels_last): median images/s and peak memory per side, ratios."""
    out = []
    keys = sorted({(r["precision"], r["channels_last"]) for r in rows})
    for precision, cl in keys:
        sel = [r for r in rows if r["precision"] == precision and r["channels_last"] == cl]
        side = {
            s: {
                "images_per_s": statistics.median(r["images_per_s"] for r in sel if r["side"] == s),
                "images_per_s_min": min(r["images_per_s"] for r in sel if r["side"] == s),
                "images_per_s_max": max(r["images_per_s"] for r in sel if r["side"] == s),
                "peak_mem_mb": max(r["peak_mem_mb"] for r in sel if r["side"] == s),
            }
            for s in ("acchooks", "minimal")
        }
        a, m = side["acchooks"], side["minimal"]
        out.append(
            {
                "precision": precision,
                "channels_last": cl,
                **{f"{s}": v for s, v in side.items()},
                "throughput_ratio": a["images_per_s"] / m["images_per_s"],
                "memory_ratio": a["peak_mem_mb"] / m["peak_mem_mb"],
            }
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=None, help="runs per side and case (default 2)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "gpu.json"))
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(
            "benchmarks/gpu.py: error: CUDA is not available (torch "
            f"{torch.__version__}, cuda {torch.version.cuda}); run it on a GPU machine with a "
            "CUDA build of torch",
            file=sys.stderr,
        )
        return EXIT_NO_CUDA
    lo = _loop_overhead()
    rows = []
    with tempfile.TemporaryDirectory(prefix="acchooks-gpu-") as tmp:
        for case in plan(args.quick, args.batch, args.reps):
            w = {k: v for k, v in case.items() if k not in ("side", "rep")}
            r = lo.run_side(case["side"], "gpu", w, threads=os.cpu_count() or 1, tmp=tmp)
            rows.append(
                {
                    **case,
                    "images_per_s": r["steps_per_s"] * case["batch"],
                    "peak_mem_mb": r["peak_mem_mb"],
                    "startup_s": r["startup_s"],
                }
            )
            print(
                f"  {case['side']:8s} {case['precision']} channels_last={case['channels_last']!s:5s}"
                f" {rows[-1]['images_per_s']:8.1f} img/s {r['peak_mem_mb']:8.0f} MB",
                flush=True,
            )
    summary = summarize(rows)
    name = torch.cuda.get_device_name(0)
    print(
        f"resnet50 224 px batch {args.batch} on {name}, torch {torch.__version__}; images/s median "
        f"[min-max], peak MB"
    )
    print(
        f"{'precision':9s} {'ch_last':7s} {'acchooks img/s':>26s} {'minimal img/s':>26s} "
        f"{'ratio':>6s} {'acc MB':>8s} {'min MB':>8s}"
    )
    for s in summary:
        a, m = s["acchooks"], s["minimal"]
        print(
            f"{s['precision']:9s} {s['channels_last']!s:7s} "
            f"{a['images_per_s']:8.1f} [{a['images_per_s_min']:.1f}-{a['images_per_s_max']:.1f}] "
            f"{m['images_per_s']:8.1f} [{m['images_per_s_min']:.1f}-{m['images_per_s_max']:.1f}] "
            f"{s['throughput_ratio']:6.3f} {a['peak_mem_mb']:8.0f} {m['peak_mem_mb']:8.0f}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "device": name,
                "batch": args.batch,
                "quick": args.quick,
                "runs": rows,
                "summary": summary,
                "env": {
                    "torch": torch.__version__,
                    "cuda": torch.version.cuda,
                    "python": platform.python_version(),
                },
            },
            f,
            indent=1,
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
