"""SIGTERM / SIGUSR1: one checkpoint at an agreed iteration, exit 75, exact resume."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acchooks.testing import launch_command, same_weights

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
BIN = Path(sys.executable).parent
LAUNCH2 = launch_command()
OPTS = [
    "model.drop_rate=0.2",
    "data.workers_per_gpu=1",
    "runner.max_epochs=3",
    "checkpoint_config.interval=3",
]


def run(work, extra=(), launcher=(sys.executable,), signal_at=None):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'data'}"}
    opts = list(OPTS)
    if signal_at:
        opts += ["custom_imports={'imports': ['signal_hooks']}", f"custom_hooks=[{signal_at}]"]
    return subprocess.run(
        [
            *launcher,
            str(ROOT / "train.py"),
            "--config",
            str(TINY),
            "--work-dir",
            str(work),
            *extra,
            "--cfg-options",
            *opts,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("sig", ["SIGTERM", pytest.param("SIGUSR1", marks=pytest.mark.slow)])
def test_signal_saves_exits_75_and_resume_is_exact(tmp_path, sig):
    straight = tmp_path / "straight"
    assert run(straight).returncode == 0
    work = tmp_path / "work"
    res = run(work, signal_at=f"{{'type': 'SignalAtIter', 'iter': 6, 'sig': '{sig}', 'times': 2}}")
    assert res.returncode == 75, res.stderr[-2000:]
    assert json.loads((work / "preempted.json").read_text())["iter"] == 6
    assert f"{sig} received: saving a checkpoint at iteration 6" in res.stdout
    assert (work / "iter_6" / "manifest.json").exists()
    assert not (work / "epoch_2").exists()  # it stopped in epoch 2
    res = run(work, extra=["--resume", "auto"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert same_weights(straight / "epoch_3", work / "epoch_3")
    assert not (work / "preempted.json").exists()


@pytest.mark.slow
def test_two_processes_agree_when_one_is_signalled(tmp_path):
    straight = tmp_path / "straight"
    opts2 = ["--cfg-options", "data.samples_per_gpu=8"]
    assert run(straight, extra=opts2, launcher=LAUNCH2).returncode == 0
    work = tmp_path / "work"
    # only rank 1 receives the signal; both must stop after the same iteration: the next
    # one (the flags are all-reduced in the background during it)
    res = run(
        work,
        extra=opts2,
        launcher=LAUNCH2,
        signal_at="{'type': 'SignalAtIter', 'iter': 5, 'rank': 1}",
    )
    # the launcher reports its workers' 75 as 1; the marker file says why
    assert res.returncode != 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert json.loads((work / "preempted.json").read_text())["iter"] == 6
    assert (work / "iter_6" / "manifest.json").exists()
    res = run(work, extra=["--resume", "auto", *opts2], launcher=LAUNCH2)
    assert res.returncode == 0, res.stderr[-2000:]
    assert same_weights(straight / "epoch_3", work / "epoch_3")
    shutil.rmtree(straight)
