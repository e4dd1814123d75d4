"""Smoke test: every benchmark script runs in --quick mode and writes valid JSON.

No timing asserts: only that the numbers exist, are positive, and the ratios are there.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")

pytestmark = pytest.mark.slow  # ~55 s: fresh processes that import torch


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _run(script: str, out: str, *extra: str, quick: bool = True) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    p = subprocess.run(
        [
            sys.executable,
            os.path.join(BENCH, script),
            *(["--quick"] if quick else []),
            "--out",
            out,
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


def test_loop_overhead(tmp_path):
    r = _run("loop_overhead.py", str(tmp_path / "loop.json"))["results"]["mlp"]
    for side in ("acchooks", "minimal"):
        for key in ("us_per_iter", "steps_per_s", "startup_s", "startup_cpu_s", "maxrss_mb"):
            stats = r["sides"][side][key]
            assert all(_positive(stats[k]) for k in ("median", "min", "max")), (side, key, stats)
        assert r["sides"][side]["threads"] == 1
    for key in ("time_ratio", "steps_per_s_ratio", "startup_ratio", "rss_ratio"):
        assert _positive(r[key]), key
    assert math.isfinite(r["overhead_us_per_iter"])
    same = r["same_process"]  # acchooks, the minimal loop, the minimal loop stepping directly
    for key in ("acchooks_us_per_iter", "minimal_us_per_iter", "minimal_direct_us_per_iter"):
        assert _positive(same[key]["median"]), key
    assert math.isfinite(same["overhead_us_per_iter"]["median"])
    assert math.isfinite(same["hooks_us_per_iter"]["median"])


def test_mixup(tmp_path):
    r = _run("mixup.py", str(tmp_path / "mixup.json"))
    assert set(r["mixing"]) == {"batch", "pair", "elem"}
    for row in [*r["mixing"].values(), r["sampler"]]:
        assert _positive(row["ratio"]) and set(row["median_ms"]) == {"acchooks", "timm"}


def test_compile(tmp_path):
    r = _run("compile.py", str(tmp_path / "compile.json"), "--backend", "aot_eager")
    assert set(r["results"]) == {"eager", "compiled"}
    assert _positive(r["ratio_compiled_to_eager"]) and _positive(r["compile_s"])
    for row in r["results"].values():
        assert _positive(row["median_steps_s"])


def test_ema(tmp_path):
    rows = _run(
        "ema.py",
        str(tmp_path / "ema.json"),
        "--model",
        "test_resnet",
        "--reps",
        "2",
        "--warmup",
        "1",
        quick=False,
    )["results"]
    assert set(rows) == {"acchooks EMAHook", "bare _foreach_lerp_", "timm ModelEmaV3"}
    for v in rows.values():
        assert all(
            _positive(v[k])
            for k in ("median_ms", "min_ms", "max_ms", "ratio_to_timm", "ratio_to_bare")
        )


def test_checkpoint(tmp_path):
    rows = _run(
        "checkpoint.py",
        str(tmp_path / "ckpt.json"),
        "--model",
        "test_resnet",
        "--reps",
        "1",
        "--warmup",
        "0",
        quick=False,
    )["results"]
    assert {
        "torch.save/load",
        "accelerate save/load_state",
        "acchooks",
        "acchooks fsync+xxh3_128",
        "safetensors save_file/load_file",
    } <= set(rows)
    for v in rows.values():
        assert (
            _positive(v["bytes"])
            and _positive(v["save_vs_torch"])
            and _positive(v["load_vs_torch"])
        )


def test_dispatch(tmp_path):
    data = _run("dispatch.py", str(tmp_path / "dispatch.json"))
    for per in ("all 10 stages", "train iter"):
        rows = data["results"][per]["results"]
        assert set(rows) == {"HookTable.call", "Runner.call_hook", "direct", "mmcv getattr"}
        for v in rows.values():
            assert all(
                _positive(v[k]) for k in ("median_us", "min_us", "max_us", "ratio_to_direct")
            )


def test_bookkeeping(tmp_path):
    data = _run("bookkeeping.py", str(tmp_path / "bk.json"))
    assert data["blocks"] == 2 and data["iters_per_block"] == 20
    assert _positive(data["acchooks_us_per_iter"]) and _positive(data["minimal_us_per_iter"])
    assert set(data["own_cost_us_per_iter"]) == {"median", "q1", "q3"}


def test_seeded_dataset(tmp_path):
    data = _run("seeded_dataset.py", str(tmp_path / "seeded.json"))
    assert {r["path"] for r in data["rows"]} >= {"getitem", "loader0"}
    assert all(_positive(r["seeded_us"]) for r in data["rows"])


def test_loader(tmp_path):
    data = _run("loader.py", str(tmp_path / "loader.json"))
    assert set(data["results"]) == {"0", "2"} and data["data"]["files"] == 96
    for r in data["results"].values():
        assert set(r["images_per_s"]) == {
            "acchooks",
            "acchooks unseeded",
            "timm",
            "torchvision",
            "acchooks wds",
        }
        assert all(_positive(v) for v in r["images_per_s"].values())
        for key in ("ratio_acchooks_to_timm", "ratio_acchooks_to_torchvision"):
            assert _positive(r[key]), key
        assert _positive(r["ratio_seeded_to_unseeded"])
        assert math.isfinite(r["seeding_cost_us_per_image"])


def test_config_errors(tmp_path):
    data = _run("config_errors.py", str(tmp_path / "cfg.json"))
    rows = data["results"]
    assert {"import torch", "train.py bad config"} <= set(rows)
    for v in rows.values():
        assert all(_positive(v[k]) for k in ("median_s", "min_s", "max_s", "ratio_to_import_torch"))
    assert data["importtime"]["top_level"] and _positive(data["importtime"]["total_ms"])


def test_gpu_script_fails_clearly_without_cuda(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", os.path.join(BENCH, "gpu.py"))
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)  # importable without CUDA
    plan = gpu.plan(quick=True)
    assert {c["precision"] for c in plan} == {"bf16", "fp16"}
    assert {c["channels_last"] for c in plan} == {True, False}
    assert {c["side"] for c in plan} == {"acchooks", "minimal"}
    summary = gpu.summarize(
        [
            dict(c, images_per_s=100.0 if c["side"] == "minimal" else 99.0, peak_mem_mb=1000.0)
            for c in plan
        ]
    )
    assert all(_positive(row["throughput_ratio"]) for row in summary)
    import torch

    if not torch.cuda.is_available():
        p = subprocess.run(
            [sys.executable, os.path.join(BENCH, "gpu.py"), "--out", str(tmp_path / "gpu.json")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 2 and "CUDA" in p.stderr, p.stderr[-2000:]


def test_run_all_lists_every_benchmark():
    spec = importlib.util.spec_from_file_location(
        "bench_run_all", os.path.join(BENCH, "run_all.py")
    )
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    assert {
        "loop_overhead",
        "bookkeeping",
        "dispatch",
        "config_errors",
        "ema",
        "checkpoint",
        "seeded_dataset",
        "loader",
    } <= set(run_all.SCRIPTS)
