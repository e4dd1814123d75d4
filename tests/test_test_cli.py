"""test.py: the same metrics as the EvalHook, on 1 and 2 processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from acchooks.testing import launch_command

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
BIN = Path(sys.executable).parent


def run(script, args, cwd, launcher=(sys.executable,)):
    return subprocess.run(
        [*launcher, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("trained")
    res = run("train.py", ["--config", str(TINY), "--work-dir", str(work)], work)
    assert res.returncode == 0, res.stderr[-2000:]
    (log,) = work.glob("*.log.json")
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    return work, [r for r in recs if "accuracy_top-1" in r][-1]


@pytest.mark.parametrize(
    "launcher",
    [
        (sys.executable,),
        launch_command(),
    ],
    ids=["1proc", "2proc"],
)
def test_test_cli_matches_eval_hook(trained, tmp_path, launcher):
    work, logged = trained
    out = tmp_path / "res.json"
    res = run(
        "test.py",
        [
            "--config",
            str(TINY),
            "--checkpoint",
            str(work / "epoch_2"),
            "--split",
            "val",
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path),
        ],
        tmp_path,
        launcher,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(out.read_text())
    assert got["num_samples"] == 30  # 30 val samples: no padding duplicates on 2 processes
    assert got["accuracy_top-1"] == pytest.approx(logged["accuracy_top-1"])
    assert got["accuracy_top-2"] == pytest.approx(logged["accuracy_top-2"])
    assert "accuracy_top-1 |" in res.stdout


def test_test_cli_bad_checkpoint(tmp_path):
    res = run("test.py", ["--config", str(TINY), "--checkpoint", str(tmp_path / "nope")], tmp_path)
    assert res.returncode == 2
    assert "--checkpoint: not found" in res.stderr
