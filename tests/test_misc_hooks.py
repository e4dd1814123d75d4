"""SyncBuffersHook (2 processes), EmptyCacheHook, ProfilerHook, and argument checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from acchooks import HOOKS
from acchooks.config.schema import check_config
from acchooks.errors import ConfigError
from acchooks.testing import launch_command, run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
BIN = Path(sys.executable).parent
# bf16 autocast on CPU: the EMA must stay fp32 under DDP and mixed precision
TWO_PROCS = launch_command(mixed_precision="bf16")


def launch(config: Path, work: Path, launcher=TWO_PROCS) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(DATA)])}
    res = subprocess.run(
        [*launcher, str(ROOT / "train.py"), "--config", str(config), "--work-dir", str(work)],
        cwd=work.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


SYNC = """
_base_ = '{tiny}'
checkpoint_config = None
evaluation = None
log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])
custom_imports = dict(imports=['acchooks_probes'], allow_failed_imports=False)
custom_hooks = [dict(type='BufferProbe', tag='before', priority='HIGHEST'),
                dict(type='SyncBuffersHook'),
                dict(type='EMAHook', momentum=0.1),
                dict(type='BufferProbe', tag='after', priority='LOWEST')]
"""


def test_sync_buffers_two_processes(tmp_path):
    cfg = tmp_path / "sync.py"
    cfg.write_text(SYNC.format(tiny=DATA / "tiny_cli.py"))
    work = tmp_path / "work"
    launch(cfg, work)
    for epoch in (1, 2):
        before = [load_file(str(work / f"before_epoch{epoch}_rank{r}.safetensors")) for r in (0, 1)]
        after = [load_file(str(work / f"after_epoch{epoch}_rank{r}.safetensors")) for r in (0, 1)]
        means = [k for k in before[0] if k.endswith("running_mean")]
        assert means
        # each process saw its own shard: the statistics differ before the hook ...
        assert any(not torch.equal(before[0][k], before[1][k]) for k in means)
        for k in before[0]:
            # ... and are identical after it: the mean of the two (mmcv's all-reduce)
            assert torch.equal(after[0][k], after[1][k]), k
            if before[0][k].is_floating_point():
                torch.testing.assert_close(after[0][k], (before[0][k] + before[1][k]) / 2)
    # the EMA of the DDP-wrapped model's parameters is the same on both processes
    ema = [load_file(str(work / f"after_ema_rank{r}.safetensors")) for r in (0, 1)]
    buffers = set(before[0])
    assert set(ema[0]) > buffers
    for k in set(ema[0]) - buffers:
        assert torch.equal(ema[0][k], ema[1][k]), k
        assert ema[0][k].dtype == torch.float32
    assert "mixed_precision=bf16" in next(work.glob("*.log")).read_text()


def test_sync_buffers_single_process_is_harmless(tmp_path):
    runner = run_config(
        tiny_config(
            tmp_path,
            runner=dict(max_epochs=1),
            custom_hooks=[dict(type="SyncBuffersHook", mode="broadcast")],
        )
    )
    assert runner.epoch == 1


def test_empty_cache_calls_accelerate(tmp_path, monkeypatch):
    import accelerate.utils.memory as memory

    calls = []
    monkeypatch.setattr(
        memory, "clear_device_cache", lambda garbage_collection=False: calls.append(1)
    )
    runner = run_config(
        tiny_config(
            tmp_path, custom_hooks=[dict(type="EmptyCacheHook", before_epoch=True, after_iter=True)]
        )
    )
    # 2 epochs of 4 iterations: 2 before, 8 after iterations, 2 after epochs
    assert len(calls) == runner.hooks.get("EmptyCacheHook").calls == 12


def _conv_ops(events) -> set[str]:
    return {e.get("name", "") for e in events if "conv" in e.get("name", "")}


def test_profiler_chrome_trace(tmp_path):
    run_config(
        tiny_config(
            tmp_path,
            custom_hooks=[
                dict(
                    type="ProfilerHook",
                    by_epoch=False,
                    profile_iters=2,
                    record_shapes=True,
                    json_trace_path="prof/trace.json",
                )
            ],
        )
    )
    trace = json.loads((tmp_path / "prof" / "trace.json").read_text())
    ops = _conv_ops(trace["traceEvents"])
    assert "aten::conv2d" in ops or "aten::convolution" in ops, sorted(ops)


def test_profiler_tb_trace_and_log_trace(tmp_path):
    run_config(
        tiny_config(
            tmp_path / "tb",
            runner=dict(max_epochs=1),
            custom_hooks=[
                dict(
                    type="ProfilerHook",
                    activities=["cpu", "cuda"],
                    schedule=dict(wait=0, warmup=1, active=2, repeat=1),
                    on_trace_ready=dict(type="tb_trace", dir_name="tb_trace"),
                )
            ],
        )
    )
    traces = list((tmp_path / "tb" / "tb_trace").glob("*.pt.trace.json"))
    (trace,) = traces  # one cycle of warmup 1 + active 2
    assert _conv_ops(json.loads(trace.read_text())["traceEvents"])
    run_config(
        tiny_config(
            tmp_path / "log",
            runner=dict(max_epochs=1),
            custom_hooks=[
                dict(
                    type="ProfilerHook",
                    on_trace_ready=dict(type="log_trace", row_limit=5, sort_by="cpu_time_total"),
                )
            ],
        )
    )
    assert "Self CPU" in next((tmp_path / "log").glob("*.log")).read_text()


@pytest.mark.parametrize(
    "hook,typo,right",
    [
        ("EMAHook", "warmup", "warm_up"),
        ("SyncBuffersHook", "distribued", "distributed"),
        ("EmptyCacheHook", "after_iters", "after_iter"),
        ("ProfilerHook", "profile_iter", "profile_iters"),
    ],
)
def test_misspelled_argument_names_hook_argument_and_choices(tmp_path, hook, typo, right):
    problems, _ = check_config(tiny_config(tmp_path, custom_hooks=[dict(type=hook, **{typo: 1})]))
    (line,) = [p for p in problems if typo in p]
    assert (
        f"custom_hooks[0] ({hook}): unexpected argument '{typo}'; did you mean '{right}'?" in line
    )
    assert "accepted:" in line and right in line.split("accepted:")[1]


@pytest.mark.parametrize(
    "cfg,message",
    [
        (dict(type="ProfilerHook", activities=["gpu"]), "unknown activity 'gpu'"),
        (dict(type="ProfilerHook", schedule=dict(wiat=1)), "did you mean 'wait'?"),
        (dict(type="ProfilerHook", on_trace_ready=dict(type="chrome")), "'tb_trace', 'log_trace'"),
        (dict(type="SyncBuffersHook", mode="max"), "'mean', 'broadcast'"),
        (dict(type="EMAHook", warm_up=-1), "EMAHook.warm_up"),
    ],
)
def test_bad_values_are_config_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        HOOKS.build(cfg)


def test_two_runs_in_one_second_keep_separate_logs(tmp_path, monkeypatch):
    """A run and its resume can start within one second: each gets its own log files."""
    import time

    second = time.localtime()
    monkeypatch.setattr(time, "localtime", lambda *a: second)  # both runs: the same second
    logs = dict(log_config=dict(interval=1), checkpoint_config=dict(interval=1))
    run_config(tiny_config(tmp_path, **logs, runner=dict(max_epochs=1)))
    run_config(tiny_config(tmp_path, **logs, runner=dict(max_epochs=2), resume_from="auto"))
    stamp = time.strftime("%Y%m%d_%H%M%S", second)
    first, resumed = tmp_path / f"{stamp}.log.json", tmp_path / f"{stamp}_2.log.json"
    epochs = []
    for log in (first, resumed):
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert "mode" not in records[0]  # each file starts with its own run's meta line
        epochs.append({r["epoch"] for r in records[1:] if r.get("mode") == "train"})
    assert epochs == [{1}, {2}]
    assert (tmp_path / f"{stamp}.log").exists() and (tmp_path / f"{stamp}_2.log").exists()
