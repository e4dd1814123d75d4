"""Hook timing: the table of time per hook and stage, logged at the end of a run and
every N log lines; iterations are sampled so the loop stays as fast as without it."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from acchooks import HOOKS, Hook
from acchooks.config.schema import check_config
from acchooks.hooks.stages import STAGES
from acchooks.testing import run_config, tiny_config

DATA = Path(__file__).resolve().parent / "data"
ROW = re.compile(r"^(\S+)\s+(\S+)\s+([\d.]+)\s+([\d.]+)%\s+(\d+)\s+([\d.]+)$")


@HOOKS.register_module()
class SleepyTimingHook(Hook):
    """A deliberately slow custom hook: 20 ms in every after_train_iter."""

    def after_train_iter(self, runner) -> None:
        time.sleep(0.02)


@HOOKS.register_module()
class CountingTimingHook(Hook):
    calls = 0

    def before_iter(self, runner) -> None:  # train and val iterations
        type(self).calls += 1


def tables(log_text: str) -> list[list[tuple]]:
    """Every 'Hook timing' table in a log: rows (hook, stage, total_s, pct, calls, mean_us)."""
    out = []
    for block in log_text.split("Hook timing (")[1:]:
        rows = []
        for line in block.splitlines()[2:]:
            m = ROW.match(line.strip())
            if not m:
                break
            h, s, tot, pct, calls, mean = m.groups()
            rows.append((h, s, float(tot), float(pct), int(calls), float(mean)))
        out.append(rows)
    return out


def _cfg(tmp_path, **kw):
    sys.path.insert(0, str(DATA)) if str(DATA) not in sys.path else None
    # TinyNet: a step far below 20 ms, so the sleeping hook is clearly the slowest
    return tiny_config(
        tmp_path,
        model=dict(_delete_=True, type="TinyNet", num_classes=4, width=4),
        custom_imports=dict(imports=["custom_models"]),
        **kw,
    )


def test_slow_hook_is_the_largest_and_every_hook_is_listed(tmp_path):
    cfg = _cfg(
        tmp_path, custom_hooks=[dict(type="SleepyTimingHook")], hook_timing=dict(log_every=3)
    )  # default sampling: ~1 iteration in 10
    runner = run_config(cfg, timestamp="t")
    log = (tmp_path / "t.log").read_text()
    found = tables(log)
    # 8 train log lines (2 epochs x 4 iterations, interval 1): after lines 3 and 6, + the end
    assert len(found) == 3, log[-3000:]
    final = found[-1]
    expected = {
        (type(h).__name__, s) for h in runner.hooks.hooks for s in STAGES if type(h).implements(s)
    }
    assert {(r[0], r[1]) for r in final} == expected
    assert "SleepyTimingHook" in {r[0] for r in final}
    top = final[0]  # sorted, largest first
    assert top[:2] == ("SleepyTimingHook", "after_train_iter"), final[:3]
    assert top[4] == 8  # calls are exact, whatever the sampling
    assert 8 * 0.02 * 0.9 <= top[2] <= 8 * 0.02 * 5  # scaled from the timed iterations
    assert top[5] >= 20_000 * 0.9  # mean us
    assert 0 < top[3] <= 100
    wall = float(re.findall(r"all hooks: [\d.]+ s of ([\d.]+) s wall time", log)[-1])
    assert top[2] <= wall
    for r in final:
        if r[1] in ("before_run", "before_train_epoch"):
            assert r[4] == {"before_run": 1, "before_train_epoch": 2}[r[1]]
    # the periodic tables show at most 10 rows and say how many more there are
    assert len(found[0]) <= 10 and "more (hook, stage) pairs" in log
    # auto progress off a terminal with a TextLoggerHook: nothing registered
    assert "ProgressBarHook" not in {type(h).__name__ for h in runner.hooks.hooks}


def test_sampling_counts_every_call_and_times_a_sample(tmp_path):
    CountingTimingHook.calls = 0
    cfg = _cfg(
        tmp_path,
        custom_hooks=[dict(type="CountingTimingHook")],
        workflow=[("train", 1), ("val", 1)],
        runner=dict(max_epochs=3),
        hook_timing=dict(sample_every=4),
    )
    runner = run_config(cfg, timestamp="t")
    rows = {(r["hook"], r["stage"]): r for r in runner.hooks.timing()}
    train, val = (
        rows["CountingTimingHook", "before_train_iter"],
        rows["CountingTimingHook", "before_val_iter"],
    )
    assert train["calls"] == 12 and val["calls"] == 9  # 3 epochs x (4 train + 3 val batches)
    assert CountingTimingHook.calls == 21
    assert 1 <= train["timed"] < 12  # the first iteration and ~1 in 4 after it
    assert rows["IterTimerHook", "after_val_iter"]["calls"] == 9


def test_timing_off_and_config_checks(tmp_path):
    cfg = _cfg(tmp_path, hook_timing=dict(enable=False))
    runner = run_config(cfg, timestamp="t")
    assert "Hook timing" not in (tmp_path / "t.log").read_text()
    assert not runner.hooks.timing_enabled
    assert all(r["timed"] == 0 for r in runner.hooks.timing())  # nothing took the timed path
    problems, _ = check_config(tiny_config(tmp_path, hook_timing=dict(sample_evry=2, log_every=-1)))
    assert any(
        "hook_timing: unexpected key 'sample_evry'; did you mean 'sample_every'" in p
        for p in problems
    ), problems
    assert any("hook_timing.log_every: expected an int >= 0" in p for p in problems)


@pytest.mark.parametrize("bad", [dict(mode="tty"), dict(enable="no"), dict(intervl=3)])
def test_progress_config_checked(tmp_path, bad):
    problems, _ = check_config(tiny_config(tmp_path, progress_config=bad))
    assert any(p.startswith("progress_config") for p in problems), problems
