"""Non-finite values: decided by all processes together; never the checkpoint to resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from acchooks.testing import launch_command

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'data'}"}


def test_one_process_nan_makes_every_process_skip(tmp_path):
    """Rank 1 alone sees a NaN loss at step 3: both skip that step, replicas stay equal."""
    dump = tmp_path / "params"
    opts = [
        "optimizer_config.nonfinite=skip",
        "data.samples_per_gpu=8",
        "custom_imports={'imports': ['nan_hooks']}",
        f"custom_hooks=[{{'type': 'NaNLossAt', 'step': 3, 'rank': 1, 'priority': 'HIGH'}}, "
        f"{{'type': 'DumpParams', 'path': '{dump}'}}]",
    ]
    launcher = launch_command()
    res = subprocess.run(
        [
            *launcher,
            str(ROOT / "train.py"),
            "--config",
            str(TINY),
            "--work-dir",
            str(tmp_path / "w"),
            "--cfg-options",
            *opts,
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (log,) = (tmp_path / "w").glob("*.log.json")
    train = [json.loads(line) for line in log.read_text().splitlines()]
    train = [r for r in train if r.get("mode") == "train"]
    assert train[-1]["skipped_steps"] == 1
    assert train[-1]["step"] == 7  # 8 iterations, one step skipped
    assert (tmp_path / "params.0").read_text() == (tmp_path / "params.1").read_text()


def test_checkpoint_with_nonfinite_weights_is_never_latest(tmp_path):
    work = tmp_path / "w"
    opts = [
        "runner.max_epochs=2",
        "custom_imports={'imports': ['nan_hooks']}",
        "custom_hooks=[{'type': 'PoisonWeightsAtEpoch', 'epoch': 2, 'priority': 'HIGH'}]",
    ]
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--config",
            str(TINY),
            "--work-dir",
            str(work),
            "--cfg-options",
            *opts,
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "checkpoint epoch_2: non-finite values" in res.stdout
    assert (work / "epoch_2" / "manifest.json").exists()  # kept for inspection
    meta = json.loads((work / "epoch_2" / "manifest.json").read_text())["meta"]
    assert len(meta["nonfinite_weights"]) == 1, meta  # the poisoned parameter, nothing else
    assert (work / "latest").read_text().strip() == "epoch_1"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--config",
            str(TINY),
            "--work-dir",
            str(work),
            "--resume",
            "auto",
            "--cfg-options",
            "runner.max_epochs=2",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "skipped epoch_2: non-finite values" in res.stdout
    assert "resumed from" in res.stdout and "epoch_1" in res.stdout


def train_log(work, opts):
    """``train.py`` on the tiny config with ``--cfg-options opts``; the JSON log records."""
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--config",
            str(TINY),
            "--work-dir",
            str(work),
            "--cfg-options",
            *opts,
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (log,) = work.glob("*.log.json")
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="Accelerate ignores fp16 on a CPU (no autocast, no GradScaler)",
)
def test_fp16_overflow_skips_the_step_and_logs_it(tmp_path):
    """fp16 with Accelerate's GradScaler: an overflowing step is skipped by the scaler,
    not counted as an optimizer step, and logged."""
    opts = [
        "accelerator.mixed_precision=fp16",
        "runner.max_epochs=1",
        "custom_imports={'imports': ['nan_hooks']}",
        "custom_hooks=[{'type': 'HugeLossAt', 'iter': 2, 'priority': 'HIGH'}]",
    ]
    recs = train_log(tmp_path, opts)
    assert recs[0]["env_info"]["mixed_precision"] == "fp16"
    train = [r for r in recs if r.get("mode") == "train"]
    assert [r["step"] for r in train] == [1, 1, 2, 3]  # iteration 2 did not step
    assert [r["skipped_steps"] for r in train] == [0, 1, 1, 1]


def test_loss_scaler_overflow_skips_the_step_on_cpu(tmp_path):
    """The same overflow path without a GPU: a real GradScaler (on CPU) sees inf gradients
    at iteration 2, skips that update and lowers its scale; the step counter, which the
    schedules follow, does not advance; the skip is logged."""
    opts = [
        "runner.max_epochs=1",
        "lr_config.step=[2]",
        "lr_config.by_epoch=False",
        "custom_imports={'imports': ['nan_hooks']}",
        "custom_hooks=[{'type': 'CpuGradScaler'}, "
        "{'type': 'HugeLossAt', 'iter': 2, 'factor': 1e38, 'priority': 'HIGH'}]",
    ]
    train = [r for r in train_log(tmp_path, opts) if r.get("mode") == "train"]
    assert [r["step"] for r in train] == [1, 1, 2, 3]  # iteration 2 did not step
    assert [r["skipped_steps"] for r in train] == [0, 1, 1, 1]
    # lr steps down after 2 real optimizer steps: at iteration 4, not 3
    assert [r["lr"] for r in train] == [0.01, 0.01, 0.01, pytest.approx(0.001, rel=1e-12)]


def test_nonfinite_tensors_names_exactly_the_tensors_with_nan_or_inf():
    """Large finite values whose sum overflows their own dtype are not taken for inf."""
    from acchooks.runner.nonfinite import nonfinite_tensors

    state = {
        "nan32": torch.tensor([1.0, float("nan")]),
        "ints": torch.tensor([1, 2]),
        "big16": torch.full((100,), 65504.0).half(),  # sums to inf in float16, all finite
        "big32": torch.full((3,), 3e38),  # sums past float32's max
        "inf64": torch.tensor([float("inf")], dtype=torch.float64),
        "empty": torch.empty(0),
        "ninf_bf16": torch.tensor([-float("inf"), 1.0]).bfloat16(),
        "ok": torch.ones(4),
    }
    assert nonfinite_tensors(state) == ["nan32", "inf64", "ninf_bf16"]
