"""Signals from the first instant: SIGTERM/SIGUSR1 during the imports, the config check,
the build or the resume load exit with the requeue status (75) and save nothing new;
trainers whose launcher is killed stop at the next iteration with a checkpoint."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acchooks.testing import launch_command

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
BIN = Path(sys.executable).parent
LAUNCH2 = tuple(launch_command())
IMPORTS = "custom_imports={'imports': ['stage_signals']}"


def command(work, *opts, launcher=(sys.executable,), extra=()):
    cmd = [*launcher, str(ROOT / "train.py"), "--config", str(TINY), "--work-dir", str(work)]
    return [*cmd, *extra, "--cfg-options", "runner.max_epochs=1", IMPORTS, *opts]


def env(**extra):
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'data'}", **extra}


def train(work, *opts, launcher=(sys.executable,), extra=(), **environ):
    return subprocess.run(
        command(work, *opts, launcher=launcher, extra=extra),
        env=env(**environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def hook(stage, sig="SIGTERM", rank=0):
    return f"custom_hooks=[{{'type': 'SignalAtStage', 'stage': '{stage}', 'sig': '{sig}', 'rank': {rank}}}]"


def contents(work: Path) -> dict[str, float]:
    """Every checkpoint file (and `latest`) with its modification time."""
    files = [p for p in work.rglob("*") if p.is_file()]
    names = {str(p.relative_to(work)): p.stat().st_mtime_ns for p in files}
    return {k: v for k, v in names.items() if k.startswith(("epoch_", "iter_", "latest"))}


def assert_preempted_before_run(res, work, sig):
    assert res.returncode == 75, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"{sig} received before training started: nothing saved" in res.stdout + res.stderr
    marker = json.loads((work / "preempted.json").read_text())
    assert marker["signal"] == sig and marker["checkpoint"] is None


def test_signal_during_config_check_exits_75_saving_nothing(tmp_path):
    res = train(tmp_path, ACCHOOKS_TEST_SIGNAL="SIGTERM@import")
    assert_preempted_before_run(res, tmp_path, "SIGTERM")
    assert not list(tmp_path.glob("epoch_*")) and not list(tmp_path.glob("iter_*"))


@pytest.mark.slow
def test_signal_during_build_exits_75_saving_nothing(tmp_path):
    res = train(tmp_path, hook("build", "SIGUSR1"))
    assert_preempted_before_run(res, tmp_path, "SIGUSR1")
    assert not list(tmp_path.glob("epoch_*")) and not list(tmp_path.glob("iter_*"))


@pytest.mark.slow
def test_signal_during_resume_load_leaves_the_checkpoints_unchanged(tmp_path):
    assert train(tmp_path, hook("none")).returncode == 0
    before = contents(tmp_path)
    res = train(tmp_path, hook("resume"), extra=["--resume", "auto"])
    assert_preempted_before_run(res, tmp_path, "SIGTERM")
    assert contents(tmp_path) == before  # nothing rewritten, nothing new


@pytest.mark.slow
def test_two_processes_signal_to_one_during_build_both_exit(tmp_path):
    res = train(tmp_path, "data.samples_per_gpu=8", hook("build", rank=1), launcher=LAUNCH2)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]  # the launcher reports its workers' 75 as 1
    assert "exitcode  : 75" in out, out[-3000:]  # both stop (or the launcher stops one)
    assert json.loads((tmp_path / "preempted.json").read_text())["signal"] == "SIGTERM"
    assert not list(tmp_path.glob("epoch_*")) and not list(tmp_path.glob("iter_*"))


def _wait_for(cond, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_trainers_of_a_killed_launcher_stop_with_a_checkpoint(tmp_path):
    """SIGUSR1 kills `accelerate launch`; its two orphaned trainers must not train on."""
    opts = ("data.samples_per_gpu=8", "runner.max_epochs=3", "checkpoint_config.interval=3")
    slow = "custom_hooks=[{'type': 'SlowIters', 'seconds': 1.0}]"
    launcher = subprocess.Popen(
        command(tmp_path, *opts, slow, launcher=LAUNCH2),
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pids = []
    try:
        started = _wait_for(lambda: len(list(tmp_path.glob("pid-*"))) == 2, 180)
        assert started, "the trainers did not start"
        pids = [int(p.read_text()) for p in tmp_path.glob("pid-*")]
        time.sleep(2)  # inside the first epoch
        launcher.send_signal(signal.SIGUSR1)
        launcher.communicate(timeout=60)
        assert launcher.returncode == -signal.SIGUSR1  # 138 in a shell
        marker = tmp_path / "preempted.json"
        assert _wait_for(marker.exists, 120), "the orphaned trainers did not stop"
        assert _wait_for(lambda: not any(_alive(p) for p in pids), 60)
        record = json.loads(marker.read_text())
        assert record["signal"] == "PARENT_EXITED"
        assert (tmp_path / f"iter_{record['iter']}" / "manifest.json").exists()
        assert record["iter"] < 12 and not (tmp_path / "epoch_3").exists()
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()
    shutil.rmtree(tmp_path, ignore_errors=True)


# a launcher that neither dies on TERM nor forwards it, over a "trainer" that checkpoints
# on TERM: the batch shell must signal the trainer itself, not only the launcher
FAKE_SRUN = """#!/usr/bin/env bash
while [[ "$1" == --* ]]; do shift; done
exec "$@"
"""
FAKE_LAUNCHER = """#!/usr/bin/env bash
while [ "$1" != --work-dir ]; do shift; done
work=$2
mkdir -p "$work"
trap ':' TERM
bash -c 'trap "echo {} > $0/preempted.json; exit 75" TERM; touch "$1/started"
for _ in $(seq 300); do sleep 0.1; done; exit 0' "$work" "$FAKE_LOG" &
child=$!
while :; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || exit "$rc"; done
"""


def test_batch_shell_signals_the_trainers_not_only_the_launcher(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in [("srun", FAKE_SRUN), ("accelerate", FAKE_LAUNCHER)]:
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o700)
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update(PATH=f"{bindir}{os.pathsep}{e['PATH']}", FAKE_LOG=str(tmp_path))
    e.update(ACCHOOKS_ROOT=str(ROOT), CONFIG="configs/x.py", WORK_DIR=str(tmp_path / "work"))
    proc = subprocess.Popen(
        ["bash", str(ROOT / "launch" / "slurm_single_node.sh")],
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert _wait_for((tmp_path / "started").exists, 30)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 75, out  # the trainer checkpointed; no Slurm to requeue with
    assert (tmp_path / "work" / "preempted.json").exists()
