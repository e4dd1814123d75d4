"""Time from process start to the error exit for a config with a misspelled key.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/config_errors.py [--quick]

Runs ``python train.py --config bad.py`` (a valid config plus ``evalution = ...``, which
must exit with status 2 and a did-you-mean) next to the floors ``python -c pass``,
``python -c 'import torch'`` and ``python -c 'import torch, timm, accelerate'``,
interleaved, each a fresh process timed from spawn to exit. Then one ``python -X
importtime`` run of the bad config shows where the time goes (top-level imports by
cumulative time, and the modules with the largest self time). Prints a table and
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BAD_CONFIG = """\
model = dict(type='TimmClassifier', model_name='resnet18', num_classes=4)
data = dict(samples_per_gpu=8, workers_per_gpu=0,
            train=dict(type='Shapes', num_samples=32, img_size=32, num_classes=4))
optimizer = dict(type='SGD', lr=0.01, momentum=0.9)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='step', step=[1])
runner = dict(type='EpochBasedRunner', max_epochs=1)
log_config = dict(interval=50, hooks=[dict(type='TextLoggerHook')])
evalution = dict(interval=1, metric='accuracy')
"""

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def commands(config: str) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        "import torch": [py, "-c", "import torch"],
        "import torch, timm, accelerate": [py, "-c", "import torch, timm, accelerate"],
        "train.py bad config": [py, os.path.join(ROOT, "train.py"), "--config", config],
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


def time_once(cmd: list[str], cwd: str, expect_rc: int) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != expect_rc:
        raise RuntimeError(f"{cmd} exited {p.returncode}, expected {expect_rc}: {p.stderr[-2000:]}")
    if expect_rc == 2 and "did you mean 'evaluation'" not in p.stderr:
        raise RuntimeError(f"no did-you-mean in the error: {p.stderr[-2000:]}")
    return dt


def parse_importtime(stderr: str, top: int = 12) -> dict[str, list[dict]]:
    """Top-level imports by cumulative time and modules by self time, in ms."""
    rows = []
    for line in stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            rows.append(
                {
                    "module": m.group(4),
                    "self_ms": int(m.group(1)) / 1e3,
                    "cumulative_ms": int(m.group(2)) / 1e3,
                    "depth": len(m.group(3)) // 2,
                }
            )
    top_level = sorted((r for r in rows if r["depth"] == 0), key=lambda r: -r["cumulative_ms"])
    # each top-level package (torch, timm, torchvision, ...) where it was first imported,
    # at any depth: who pays for what inside acchooks.cli.train
    packages = sorted(
        (r for r in rows if "." not in r["module"] and r["cumulative_ms"] >= 20),
        key=lambda r: -r["cumulative_ms"],
    )
    by_self = sorted(rows, key=lambda r: -r["self_ms"])
    total = sum(r["cumulative_ms"] for r in rows if r["depth"] == 0)
    return {
        "total_ms": total,
        "top_level": top_level[:top],
        "packages": packages[:top],
        "by_self": by_self[:top],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one rep, no warm-up (smoke test)")
    ap.add_argument("--reps", type=int, default=None, help="runs per command (default 5)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "config_errors.json"))
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 5)
    warmup = 0 if args.quick else 1
    with tempfile.TemporaryDirectory(prefix="acchooks-cfgerr-") as tmp:
        config = os.path.join(tmp, "bad.py")
        with open(config, "w") as f:
            f.write(BAD_CONFIG)
        cmds = commands(config)
        if args.quick:  # the smoke test: the bad config and the torch floor only
            cmds = {k: v for k, v in cmds.items() if k in ("import torch", "train.py bad config")}
        times: dict[str, list[float]] = {k: [] for k in cmds}
        names = list(cmds)
        for rep in range(warmup + reps):
            k = rep % len(names)
            for name in names[k:] + names[:k]:
                dt = time_once(cmds[name], tmp, 2 if name == "train.py bad config" else 0)
                if rep >= warmup:
                    times[name].append(dt)
        p = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                os.path.join(ROOT, "train.py"),
                "--config",
                config,
            ],
            cwd=tmp,
            env=_env(),
            capture_output=True,
            text=True,
        )
        imports = parse_importtime(p.stderr)
    floor = statistics.median(times["import torch"])
    rows = {
        n: {
            "median_s": statistics.median(t),
            "min_s": min(t),
            "max_s": max(t),
            "ratio_to_import_torch": statistics.median(t) / floor,
        }
        for n, t in times.items()
    }
    print(
        f"start to exit, {reps} interleaved runs each after {warmup} warm-up; load avg "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; seconds, median [min-max]"
    )
    print(f"{'command':32s} {'seconds':>22s} {'x import torch':>15s}")
    for n, r in rows.items():
        print(
            f"{n:32s} {r['median_s']:7.2f} [{r['min_s']:.2f}-{r['max_s']:.2f}]    "
            f"{r['ratio_to_import_torch']:10.2f}"
        )
    print(
        f"where the time goes (python -X importtime train.py --config bad.py, one run, "
        f"imports {imports['total_ms'] / 1e3:.2f} s):"
    )
    for r in imports["top_level"][:3]:
        print(f"  {r['cumulative_ms']:8.0f} ms cumulative  {r['module']}")
    for r in imports["packages"][:8]:  # nested: a package's time includes those it imports
        print(f"  {r['cumulative_ms']:8.0f} ms package     {r['module']} (depth {r['depth']})")
    for r in imports["by_self"][:6]:
        print(f"  {r['self_ms']:8.0f} ms self        {r['module']}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "reps": reps,
                "warmup": warmup,
                "results": rows,
                "importtime": imports,
                "env": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg(),
                    "quick": args.quick,
                },
            },
            f,
            indent=1,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
