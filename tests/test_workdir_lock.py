"""One run per work dir: a second run is refused before heavy work, naming the holder; a
killed run never leaves a stale lock; --dry-run is not blocked."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acchooks.cli.workdir_lock import WorkDirLock
from acchooks.testing import launch_command

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
BIN = Path(sys.executable).parent
LAUNCH2 = tuple(launch_command())


def train(work, *extra, launcher=(sys.executable,), wait=True):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'data'}"}
    cmd = [*launcher, str(ROOT / "train.py"), "--config", str(TINY), "--work-dir", str(work)]
    cmd += ["--cfg-options", "runner.max_epochs=1", *extra]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_second_run_is_refused_naming_the_holder(tmp_path):
    holder = WorkDirLock(str(tmp_path))
    assert holder.acquire()
    try:
        res = train(tmp_path)
    finally:
        holder.release()
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    msg = f"work_dir {tmp_path} is in use by another run (pid {os.getpid()} on host "
    assert msg in res.stderr and socket.gethostname() in res.stderr, res.stderr
    assert res.stderr.count("error:") == 1
    assert "Traceback" not in res.stderr
    assert not list(tmp_path.glob("*.log")) and not (tmp_path / "tiny_cli.py").exists()


@pytest.mark.slow
def test_two_runs_at_once_one_is_refused_and_a_killed_run_leaves_no_lock(tmp_path):
    slow = [
        "custom_imports={'imports': ['stage_signals']}",
        "custom_hooks=[{'type': 'SlowIters', 'seconds': 30}]",
    ]
    first = train(tmp_path, *slow, wait=False)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "pid-0").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "pid-0").exists(), "the first run did not start"
        second = train(tmp_path)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"(pid {first.pid} on host {socket.gethostname()}" in second.stderr
        assert len(list(tmp_path.glob("*.log"))) == 1  # the first run's log only
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    third = train(tmp_path)  # the kill -9'd run's lock went with its process
    assert third.returncode == 0, third.stderr[-2000:]


def test_dry_run_is_not_blocked(tmp_path):
    holder = WorkDirLock(str(tmp_path))
    assert holder.acquire()
    try:
        res = train(tmp_path, "--dry-run")
    finally:
        holder.release()
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Dry run OK" in res.stdout


@pytest.mark.slow
def test_two_process_run_is_refused_on_every_process(tmp_path):
    holder = WorkDirLock(str(tmp_path))
    assert holder.acquire()
    try:
        res = train(tmp_path, "data.samples_per_gpu=8", launcher=LAUNCH2)
    finally:
        holder.release()
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert out.count(f"work_dir {tmp_path} is in use by another run") == 1, out[-3000:]
    # rank 0 exits 2; rank 1 too, unless the launcher has already stopped it
    assert "exitcode  : 2" in out, out[-3000:]
    assert "Environment:" not in out  # refused before the model, data or resume
    assert not list(tmp_path.glob("*.log"))
