"""Train-loader images/s: acchooks' loader as train.py builds it, next to timm's and a bare
torchvision one, same run.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/loader.py            # ~10 min on 2 loaded cores
    OMP_WAIT_POLICY=PASSIVE python benchmarks/loader.py --quick    # 96 images, 1 epoch

The data is a JPEG folder this script writes once (cached under the temp dir, fixed seed):
``--images`` files (1,200) in 10 classes, 80 % of them photo-like 300-500 px (smooth
gradients and waves plus noise, quality 95: ~100 KB, as camera photos of that size) and
20 % small 224-300 px ones. Each side iterates one full epoch per rep over a train
transform at 224 px (timm's ``create_transform(224, is_training=True)``: random resized
crop, flip, colour jitter, normalize; the same transform on every side, checked by
repr), batch 32, one process, no model (each batch tensor is touched). Sides:

- ``acchooks``: ``build_dataloader(cfg.data, 'train', seed, True)`` from a config with
  ``data.train=dict(type='ImageFolder', root=..., input_size=224, is_training=True)``,
  exactly as train.py builds it (``SeededDataset`` wrapping included; ``set_epoch`` per
  epoch as the runner calls it);
- ``acchooks unseeded``: a DataLoader with the same options over the same ImageFolder,
  without the SeededDataset wrapper: the per-sample determinism cost is the difference;
- ``timm``: ``timm.data.create_loader`` on ``timm.data.create_dataset('', root)``,
  ``is_training=True``, ``use_prefetcher=False`` (CPU);
- ``torchvision``: ``torchvision.datasets.ImageFolder`` and a plain DataLoader;
- ``acchooks wds``: the same images packed into 8 WebDataset tars (written once beside
  the folder), read by ``TimmDataset(name='wds/...')`` through ``build_dataloader``.

At ``--workers`` 0 and 2 (persistent workers where > 0, as acchooks and timm default to):
one warm-up epoch per side, then ``--epochs`` reps, the sides' order rotated rep by rep.
images/s counts the images delivered (timm drops the last partial batch when training).
Each epoch is also timed in CPU seconds (this process plus its DataLoader workers, from
``/proc/<pid>/stat``): images per CPU second moves far less than wall time when other
processes share the cores. Reports medians and min-max of both, and the ratios
acchooks/timm, acchooks/torchvision, acchooks/acchooks-unseeded and wds/folder. Writes JSON to ``benchmarks/results/loader.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import PIL
import timm
import torch
import torchvision
from PIL import Image
from timm.data import create_dataset, create_loader, create_transform
from torch.utils.data import DataLoader

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from acchooks.config import Config  # noqa: E402
from acchooks.runner.loaders import build_dataloader  # noqa: E402

CLASSES = 10
SIDES = ("acchooks", "acchooks unseeded", "timm", "torchvision", "acchooks wds")
SHARDS = 8


def _photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A photo-like RGB image: per-channel gradients and waves plus grain."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c = rng.uniform(0, 255, (3, 3))
    waves = [rng.uniform(15, 60, 2) for _ in range(3)]
    base = np.stack(
        [
            c[k, 0]
            + (c[k, 1] - c[k, 0]) * x / w * np.cos(c[k, 2] / 40)
            + 60 * np.sin(x / waves[k][0] + y / waves[k][1])
            for k in range(3)
        ],
        -1,
    )
    grain = rng.normal(0, 16, (h, w, 1)) + rng.normal(0, 8, (h, w, 3))
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))


def make_folder(n: int, seed: int = 0) -> str:
    """``<tmp>/acchooks_bench_loader/n<n>_s<seed>/c<k>/<i>.jpg``, written once."""
    root = os.path.join(tempfile.gettempdir(), "acchooks_bench_loader", f"n{n}_s{seed}")
    if os.path.exists(os.path.join(root, "done")):
        return root
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.random() < 0.2
        lo, hi = (224, 300) if small else (300, 500)
        w, h = (int(v) for v in rng.integers(lo, hi + 1, 2))
        folder = os.path.join(root, f"c{i % CLASSES}")
        os.makedirs(folder, exist_ok=True)
        _photo(rng, w, h).save(os.path.join(folder, f"{i:05d}.jpg"), "JPEG", quality=95)
    open(os.path.join(root, "done"), "w").close()
    return root


def make_shards(root: str) -> str:
    """The folder's images packed into ``SHARDS`` WebDataset tars (``<i>.jpg`` with
    ``<i>.cls``, the ImageFolder class index), written once beside it: a brace pattern."""
    import tarfile

    out = root + "_wds"
    pattern = os.path.join(out, f"train-{{0000..{SHARDS - 1:04d}}}.tar")
    if os.path.exists(os.path.join(out, "done")):
        return pattern
    os.makedirs(out, exist_ok=True)
    files = sorted(torchvision.datasets.ImageFolder(root).samples)
    for s in range(SHARDS):
        with tarfile.open(os.path.join(out, f"train-{s:04d}.tar"), "w") as tar:
            for i, (path, label) in enumerate(files[s::SHARDS]):
                key = f"{s:04d}{i:05d}"
                tar.add(path, arcname=f"{key}.jpg")
                info = tarfile.TarInfo(f"{key}.cls")
                data = str(label).encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    open(os.path.join(out, "done"), "w").close()
    return pattern


def folder_stats(root: str) -> dict:
    """Count and mean / min / max file size (KB) of the JPEGs under ``root``."""
    sizes = [
        os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(root)
        for f in files
        if f.endswith(".jpg")
    ]
    return {
        "files": len(sizes),
        "mean_kb": round(statistics.mean(sizes) / 1e3, 1),
        "min_kb": round(min(sizes) / 1e3, 1),
        "max_kb": round(max(sizes) / 1e3, 1),
    }


def build_sides(root: str, workers: int, batch: int, seed: int) -> dict[str, DataLoader]:
    """The four loaders over ``root`` (see the module docstring)."""
    train = dict(type="ImageFolder", root=root, input_size=224, is_training=True)
    cfg = Config(dict(data=dict(samples_per_gpu=batch, workers_per_gpu=workers, train=train)))
    ours = build_dataloader(cfg.data, "train", seed, True)
    generator = torch.Generator()
    generator.manual_seed(seed)
    unseeded = DataLoader(
        ours.dataset.dataset,  # the ImageFolder inside SeededDataset
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=ours.drop_last,
        pin_memory=ours.pin_memory,
        persistent_workers=ours.persistent_workers,
        generator=generator,
    )
    timm_loader = create_loader(
        create_dataset("", root=root),
        input_size=(3, 224, 224),
        batch_size=batch,
        is_training=True,
        use_prefetcher=False,
        num_workers=workers,
        persistent_workers=workers > 0,
        device=torch.device("cpu"),
    )
    tv = torchvision.datasets.ImageFolder(root, transform=create_transform(224, is_training=True))
    tv_loader = DataLoader(
        tv, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    wds = dict(type="TimmDataset", name="wds/bench", root=make_shards(root), is_training=True)
    wds_cfg = Config(dict(data=dict(samples_per_gpu=batch, workers_per_gpu=workers, train=wds)))
    shards = build_dataloader(wds_cfg.data, "train", seed, True)
    sides = dict(zip(SIDES, (ours, unseeded, timm_loader, tv_loader, shards), strict=True))
    transforms = {repr(_dataset(loader).transform) for loader in sides.values()}
    assert len(transforms) == 1, f"the sides' transforms differ: {transforms}"
    return sides


def _dataset(loader: DataLoader) -> Any:
    """The innermost dataset (inside SeededDataset)."""
    ds = loader.dataset
    return getattr(ds, "dataset", ds)


def _worker_cpu_s(loader: DataLoader) -> float:
    """CPU seconds (user + system) used so far by ``loader``'s live worker processes."""
    workers = getattr(getattr(loader, "_iterator", None), "_workers", None) or []
    total = 0
    for w in workers:
        try:
            with open(f"/proc/{w.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        except (OSError, ValueError, IndexError, AttributeError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def epoch(loader: DataLoader, index: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (this process and the loader's workers) and images of
    one full epoch of ``loader`` (``set_epoch`` as the runner calls it)."""
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(index)
    images, touched = 0, 0.0
    cpu0 = time.process_time() + _worker_cpu_s(loader)
    t0 = time.perf_counter()
    for x, y in loader:
        images += x.shape[0]
        touched += float(x[:, 0, 0, 0].sum()) + int(y[0])
    wall = time.perf_counter() - t0
    return wall, time.process_time() + _worker_cpu_s(loader) - cpu0, images


def interleaved(
    sides: dict[str, DataLoader], reps: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """images per wall second and per CPU second of each side per rep; the sides' order
    rotated rep by rep."""
    names = list(sides)
    ips: dict[str, list[float]] = {k: [] for k in names}
    ipc: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(warmup + reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            wall, cpu, images = epoch(sides[name], rep)
            if rep >= warmup:
                ips[name].append(images / wall)
                ipc[name].append(images / cpu)
            print(
                f"  rep {rep} {name:18s} {images / wall:7.1f} images/s "
                f"{images / cpu:7.1f} images/CPU-s",
                flush=True,
            )
    return ips, ipc


def _ratios(med: dict[str, float], suffix: str) -> dict[str, float]:
    ours = med["acchooks"]
    return {
        f"ratio_acchooks_to_timm{suffix}": round(ours / med["timm"], 3),
        f"ratio_acchooks_to_torchvision{suffix}": round(ours / med["torchvision"], 3),
        f"ratio_seeded_to_unseeded{suffix}": round(ours / med["acchooks unseeded"], 3),
        f"ratio_wds_to_folder{suffix}": round(med["acchooks wds"] / ours, 3),
    }


def summarize(ips: dict[str, list[float]], ipc: dict[str, list[float]]) -> dict:
    """Medians, min-max and the ratios against acchooks (> 1: acchooks faster), of images
    per wall second and (``_cpu``) per CPU second of this process and its workers."""
    med = {k: statistics.median(v) for k, v in ips.items()}
    med_cpu = {k: statistics.median(v) for k, v in ipc.items()}
    unseeded = med_cpu["acchooks unseeded"]
    return {
        "images_per_s": {k: round(v, 2) for k, v in med.items()},
        "min_max": {k: [round(min(v), 2), round(max(v), 2)] for k, v in ips.items()},
        "runs": {k: [round(x, 2) for x in v] for k, v in ips.items()},
        "images_per_cpu_s": {k: round(v, 2) for k, v in med_cpu.items()},
        "min_max_cpu": {k: [round(min(v), 2), round(max(v), 2)] for k, v in ipc.items()},
        **_ratios(med, ""),
        **_ratios(med_cpu, "_cpu"),
        "seeding_cost_us_per_image": round(
            1e6 / med["acchooks"] - 1e6 / med["acchooks unseeded"], 1
        ),
        "seeding_cost_cpu_us_per_image": round(1e6 / med_cpu["acchooks"] - 1e6 / unseeded, 1),
    }


def _print_table(results: dict[str, dict]) -> None:
    for unit, key, suffix in (("images/s", "", ""), ("images/CPU-s", "_cpu", "_cpu")):
        per = "images_per_cpu_s" if key else "images_per_s"
        print(f"\n{'workers':>7s} " + " ".join(f"{s:>18s}" for s in SIDES) + f"  ({unit})")
        for workers, r in results.items():
            span = r[f"min_max{key}"]
            cells = [f"{r[per][s]:7.1f} [{span[s][0]:.0f}-{span[s][1]:.0f}]" for s in SIDES]
            print(f"{workers:>7s} " + " ".join(f"{c:>18s}" for c in cells))
            cost = r[f"seeding_cost{key}_us_per_image"]
            print(
                f"        acchooks/timm x{r['ratio_acchooks_to_timm' + suffix]:.3f}, "
                f"acchooks/torchvision x{r['ratio_acchooks_to_torchvision' + suffix]:.3f}, "
                f"seeded/unseeded x{r['ratio_seeded_to_unseeded' + suffix]:.3f} "
                f"({cost:+.0f} µs/image), "
                f"wds/folder x{r['ratio_wds_to_folder' + suffix]:.3f}"
            )


def _release(loaders: Iterable[DataLoader]) -> None:
    for loader in loaders:  # stop persistent workers before the next round
        it = getattr(loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        loader._iterator = None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes: 96 images, 1 epoch")
    ap.add_argument("--images", type=int, default=None, help="JPEG files (default 1200)")
    ap.add_argument("--epochs", type=int, default=None, help="measured epochs (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up epochs per side")
    ap.add_argument("--workers", default="0,2", help="comma-separated num_workers values")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads, main process")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "loader.json"))
    args = ap.parse_args()
    n = args.images or (96 if args.quick else 1200)
    epochs = args.epochs or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    root = make_folder(n, args.seed)
    stats = folder_stats(root)
    print(f"data: {root}: {stats}", flush=True)
    results = {}
    for workers in (int(w) for w in args.workers.split(",")):
        print(f"workers={workers}", flush=True)
        sides = build_sides(root, workers, args.batch, args.seed)
        results[str(workers)] = summarize(*interleaved(sides, epochs, args.warmup))
        _release(sides.values())
    _print_table(results)
    result = {
        "benchmark": "loader",
        "data": {"root": root, **stats, "classes": CLASSES},
        "epochs": epochs,
        "warmup": args.warmup,
        "batch": args.batch,
        "input_size": 224,
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "pillow": PIL.__version__,
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
