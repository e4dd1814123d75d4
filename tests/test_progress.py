"""Progress: a tqdm bar on the main process only (log lines printed above it), progress
lines off a terminal when no text logger prints, off with --no-progress; samples/s in
the log lines and JSON records."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acchooks.testing import launch_command, run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
BIN = Path(sys.executable).parent
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - acchooks - ")


def train(args, cwd, launcher=(sys.executable,), merge=False):
    """Run train.py; output decoded without newline translation (tqdm's \r kept)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [*launcher, str(ROOT / "train.py"), "--config", str(TINY), *args],
        cwd=cwd,
        env=env,
        timeout=300,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE,
    )
    res.stdout = res.stdout.decode("utf-8", "replace")
    res.stderr = (res.stderr or b"").decode("utf-8", "replace")
    return res


def records(work: Path) -> list[dict]:
    (log,) = work.glob("*.log.json")
    return [json.loads(line) for line in log.read_text().splitlines()]


def closed_bars(out: str, epoch: str) -> int:
    """Bars left on screen when closed: lines whose last redraw is ``epoch``'s bar at 100%."""
    return sum(line.split("\r")[-1].startswith(f"Epoch {epoch}: 100%|") for line in out.split("\n"))


def segments(out: str) -> list[str]:
    """What a terminal would show line by line: split at \\r and \\n."""
    return [s for s in re.split(r"[\r\n]", out) if s.strip()]


def test_bar_with_log_lines_above_it_and_samples_per_s(tmp_path):
    # stdout and stderr into one pipe, as on a terminal; the bar forced (not a tty here)
    res = train(
        [
            "--work-dir",
            str(tmp_path / "w"),
            "--cfg-options",
            "progress_config.mode=bar",
            "progress_config.refresh_s=0",
        ],
        tmp_path,
        merge=True,
    )
    assert res.returncode == 0, res.stdout[-3000:]
    segs = segments(res.stdout)
    bars = [s for s in segs if s.startswith("Epoch 1/2:") or s.startswith("Epoch 2/2:")]
    # epoch, iterations, elapsed<remaining, it/s, loss and the run's eta
    assert any(
        re.search(
            r"^Epoch 2/2: 100%\|.*\| 4/4 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+it/s, "
            r"loss=\d+\.\d{4}, eta=\d+:\d\d:\d\d\]",
            s,
        )
        for s in bars
    ), bars
    assert closed_bars(res.stdout, "1/2") == closed_bars(res.stdout, "2/2") == 1
    # the EvalHook's evaluation after each epoch: a transient bar over its 2 val batches
    evals = [s for s in segs if s.startswith("Eval:")]
    assert sum(bool(re.match(r"Eval: 100%\|.*\| 2/2 \[", s)) for s in evals) == 2, evals
    # every log line starts a line of its own: none glued behind a bar
    logged = [s for s in segs if " - acchooks - INFO - " in s]
    assert len(logged) > 10 and all(TIMESTAMP.match(s) for s in logged), [
        s for s in logged if not TIMESTAMP.match(s)
    ][:3]
    assert "(VERY_LOW    ) ProgressBarHook" in res.stdout
    # samples/s: global batch (16, one process) / the iteration time, in JSON and text
    train_recs = [r for r in records(tmp_path / "w") if r.get("mode") == "train"]
    assert len(train_recs) == 8
    for r in train_recs:
        assert r["samples/s"] == pytest.approx(16 / r["time"], rel=1e-9)
    assert re.search(r"data_time: [\d.]+, samples/s: [\d.]+, loss:", res.stdout)


def test_no_progress_flag(tmp_path, capsys):
    from acchooks.cli.train import main

    rc = main(
        [
            "--config",
            str(TINY),
            "--work-dir",
            str(tmp_path / "w"),
            "--no-progress",
            "--cfg-options",
            "progress_config.mode=bar",
            "runner.max_epochs=1",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    assert "Epoch 1/1:" not in out.err and "it/s" not in out.err + out.out
    assert "ProgressBarHook" not in out.out
    assert "Epoch [1][4/4]" in out.out  # the log lines are still there


def test_lines_off_a_terminal_without_text_logger(tmp_path):
    # auto mode, not a terminal, no TextLoggerHook: plain progress lines through the logger
    cfg = tiny_config(
        tmp_path, log_config=dict(interval=1, hooks=[]), progress_config=dict(interval=2)
    )
    runner = run_config(cfg, timestamp="t")
    assert "ProgressBarHook" in {type(h).__name__ for h in runner.hooks.hooks}
    lines = re.findall(r"INFO - (Epoch \[\d/2\]\[\d/4\] .*)", (tmp_path / "t.log").read_text())
    assert [ln.split(" ")[1] for ln in lines] == [
        "[1/2][2/4]",
        "[1/2][4/4]",
        "[2/2][2/4]",
        "[2/2][4/4]",
    ]
    for ln in lines:
        assert re.fullmatch(
            r"Epoch \[\d/2\]\[\d/4\] \d+% \| [\d.]+ it/s \| eta \d+:\d\d:\d\d"
            r" \| loss \d+\.\d{4}",
            ln,
        ), ln
    assert "\r" not in (tmp_path / "t.log").read_text()


@pytest.mark.slow  # two processes: ~20-40 s on a 2-core machine
def test_bar_on_the_main_process_only(tmp_path):
    launcher = launch_command()
    res = train(
        [
            "--work-dir",
            str(tmp_path / "w"),
            "--cfg-options",
            "data.samples_per_gpu=8",
            "progress_config.mode=bar",
            "progress_config.refresh_s=0",
        ],
        tmp_path,
        launcher=launcher,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    segs = segments(res.stderr)
    # one bar per epoch (4 iterations of 2 x 8 samples), drawn by rank 0 only
    assert closed_bars(res.stderr, "1/2") == closed_bars(res.stderr, "2/2") == 1, segs
    assert any(s.startswith("Epoch 2/2: 100%|") and "4/4" in s for s in segs)
    train_recs = [r for r in records(tmp_path / "w") if r.get("mode") == "train"]
    for r in train_recs:  # global: 2 processes x 8 samples
        assert r["samples/s"] == pytest.approx(16 / r["time"], rel=0.25)
