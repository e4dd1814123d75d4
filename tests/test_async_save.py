"""Background checkpoint saves (``checkpoint_config.async_save=True``): every guarantee of
the synchronous path. Bitwise equal to a synchronous run; a SIGKILL at each phase of an
in-flight save leaves the last committed checkpoint and an exact auto-resume; a background
failure stops the run with one clear error, the previous checkpoint intact; preemption,
the end of the run and an exception in a hook wait for the commit; non-finite weights are
never ``latest``; two processes agree on the commit."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import acchooks.checkpoint as ckpt_io
from acchooks.checkpoint import faults, find_latest, load_checkpoint, read_latest_pointer
from acchooks.hooks.hook import Hook
from acchooks.registry import HOOKS
from acchooks.runner.async_save import CheckpointSaveError
from acchooks.runner.preemption import Preempted
from acchooks.testing import run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
ASYNC = dict(interval=1, max_keep_ckpts=1, async_save=True)
EMA = [dict(type="EMAHook", momentum=0.1)]


@HOOKS.register_module()
class AsyncTestRaiseAt(Hook):
    """Raises at the given (1-based) train iteration: an exception in a hook."""

    priority = 90

    def __init__(self, iter: int):
        self.iter = iter

    def after_train_iter(self, runner) -> None:
        if runner.iter + 1 == self.iter:
            raise RuntimeError(f"hook failure at iter {self.iter}")


@HOOKS.register_module()
class AsyncTestSignalAt(Hook):
    """Sends SIGTERM to this process after the given (1-based) train iteration."""

    priority = 90

    def __init__(self, iter: int):
        self.iter = iter

    def after_train_iter(self, runner) -> None:
        if runner.iter + 1 == self.iter:
            os.kill(os.getpid(), signal.SIGTERM)


def _cfg(work, **over):
    over.setdefault("checkpoint_config", ASYNC)
    over.setdefault("custom_hooks", EMA)
    over.setdefault("runner", dict(max_epochs=3))
    return tiny_config(work, **over)


def _files(ckpt: Path) -> dict[str, object]:
    """Every tensor and JSON file of a checkpoint (the manifest has a timestamp)."""
    out: dict[str, object] = {}
    for f in sorted(ckpt.iterdir()):
        if f.suffix == ".safetensors":
            out.update({f"{f.name}:{k}": v for k, v in load_file(f).items()})
        elif f.name != "manifest.json":
            out[f.name] = f.read_text()
    return out


def _assert_same(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for k, v in fa.items():
        if isinstance(v, torch.Tensor):  # bitwise; the unused Python gauss slot is NaN
            torch.testing.assert_close(v, fb[k], rtol=0, atol=0, equal_nan=True, msg=k)
        else:
            assert v == fb[k], k


def _hidden(work: Path) -> list[str]:
    return sorted(p.name for p in work.iterdir() if p.name.startswith((".staging", ".trash")))


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """A synchronous run to compare with: epoch_3 (max_keep_ckpts=1) and latest."""
    work = tmp_path_factory.mktemp("sync")
    run_config(_cfg(work, checkpoint_config=dict(interval=1, max_keep_ckpts=1)))
    return work


@pytest.fixture
def slow_writes(monkeypatch):
    """Every checkpoint write takes 0.3 s longer, so a save is surely in flight."""
    real = ckpt_io.save_checkpoint

    def slow(*args, **kwargs):
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(ckpt_io, "save_checkpoint", slow)


def test_async_run_is_bitwise_the_sync_run(straight, tmp_path, slow_writes):
    runner = run_config(_cfg(tmp_path))
    assert sorted(p.name for p in tmp_path.glob("epoch_*")) == ["epoch_3"]  # rotated
    assert read_latest_pointer(tmp_path) == tmp_path / "epoch_3"  # the end of the run waited
    assert not _hidden(tmp_path)
    _assert_same(tmp_path / "epoch_3", straight / "epoch_3")
    snap = runner.checkpointer.background.snapshot
    # one state's worth of reused buffers: model + momentum + EMA (+ small rng)
    n_model = sum(t.numel() * t.element_size() for t in runner.model.state_dict().values())
    assert 2 * n_model < snap.nbytes < 4 * n_model


# ------------------------------------------------------------ kill -9 at each phase
# phase -> (ACCHOOKS_TEST_KILL_AT, the checkpoint that survives)
KILLS = {
    "snapshot": ("snapshot:2", "epoch_1"),
    "model": ("model:2", "epoch_1"),
    "optimizer": ("optimizer:2", "epoch_1"),
    "before_manifest": ("before_manifest:2", "epoch_1"),
    "before_rename": ("before_rename:2", "epoch_1"),
    "latest": ("latest:2", "epoch_2"),
    "rotation": ("rotation:1", "epoch_2"),
}
assert set(KILLS) == set(faults.PHASES + faults.ASYNC_PHASES)
FAST_KILLS = ("snapshot", "model")


def _killed_run(work: str, spec: str) -> None:
    os.environ[faults.ENV] = spec
    faults._reached.clear()
    run_config(_cfg(work))
    os._exit(0)  # not reached: the kill point kills


@pytest.mark.parametrize(
    "phase",
    [p if p in FAST_KILLS else pytest.param(p, marks=pytest.mark.slow) for p in KILLS],
)
def test_kill_mid_async_save_then_auto_resume_is_exact(straight, tmp_path, phase):
    spec, survivor = KILLS[phase]
    proc = multiprocessing.get_context("fork").Process(target=_killed_run, args=(tmp_path, spec))
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    assert find_latest(tmp_path, verify="checksum") == (tmp_path / survivor, [])
    load_checkpoint(tmp_path / survivor)
    assert not (tmp_path / "epoch_3").exists()

    runner = run_config(_cfg(tmp_path, resume_from="auto"))
    assert runner.state.epoch == 3
    assert not _hidden(tmp_path)  # leftovers of the killed save were removed
    assert read_latest_pointer(tmp_path) == tmp_path / "epoch_3"
    _assert_same(tmp_path / "epoch_3", straight / "epoch_3")


# ------------------------------------------------------------ failures, waits
def test_background_failure_is_one_clear_error_previous_intact(tmp_path, monkeypatch):
    monkeypatch.setenv(faults.FAIL_ENV, "before_manifest:2")
    monkeypatch.setattr(faults, "_failed", {})
    with pytest.raises(CheckpointSaveError) as info:
        run_config(_cfg(tmp_path))
    msg = str(info.value)
    assert msg.startswith("checkpoint epoch_2: the background save (async_save=True) failed")
    assert "No space left on device" in msg and "epoch_1 ('latest') is intact" in msg
    assert "--resume auto" in msg and str(tmp_path) in msg
    assert find_latest(tmp_path, verify="checksum") == (tmp_path / "epoch_1", [])
    assert read_latest_pointer(tmp_path) == tmp_path / "epoch_1"
    assert not (tmp_path / "epoch_2").exists() and not (tmp_path / "epoch_3").exists()
    assert not _hidden(tmp_path)


def test_exception_in_hook_waits_for_the_commit(tmp_path, slow_writes):
    # iteration 5 is the first of epoch 2: epoch_1's write is still sleeping
    with pytest.raises(RuntimeError, match="hook failure at iter 5"):
        run_config(_cfg(tmp_path, custom_hooks=[*EMA, dict(type="AsyncTestRaiseAt", iter=5)]))
    assert find_latest(tmp_path, verify="checksum") == (tmp_path / "epoch_1", [])
    assert read_latest_pointer(tmp_path) == tmp_path / "epoch_1"
    assert not _hidden(tmp_path)


def test_preemption_waits_then_saves_synchronously(tmp_path, slow_writes):
    cfg = _cfg(
        tmp_path,
        runner=dict(_delete_=True, type="IterBasedRunner", max_iters=12),
        checkpoint_config=dict(interval=4, by_epoch=False, async_save=True),
        custom_hooks=[*EMA, dict(type="AsyncTestSignalAt", iter=5)],
    )
    with pytest.raises(Preempted):
        run_config(cfg)
    # iter_4 (in flight at the signal) and the preemption's iter_5 both committed, in order
    for name, it in (("iter_4", 4), ("iter_5", 5)):
        assert load_checkpoint(tmp_path / name).meta["iter"] == it
    assert read_latest_pointer(tmp_path) == tmp_path / "iter_5"
    assert (tmp_path / "preempted.json").is_file() and not _hidden(tmp_path)


def test_nonfinite_async_save_is_not_latest(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import nan_hooks  # noqa: F401  (registers PoisonWeightsAtEpoch)

    hooks = [*EMA, dict(type="PoisonWeightsAtEpoch", epoch=2, priority="HIGH")]
    cfg = _cfg(tmp_path, checkpoint_config=dict(interval=1, async_save=True), custom_hooks=hooks)
    runner = run_config(cfg)
    assert runner.checkpointer.nonfinite_saves == ["epoch_2", "epoch_3"]
    assert read_latest_pointer(tmp_path) == tmp_path / "epoch_1"
    assert "nonfinite_weights" in load_checkpoint(tmp_path / "epoch_2").meta


# ------------------------------------------------------------ the CLI, two processes (slow)
LAUNCH2 = [
    str(Path(sys.executable).parent / "accelerate"),
    "launch",
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]
OPTS = [
    "runner.max_epochs=3",
    "checkpoint_config.interval=1",
    "checkpoint_config.max_keep_ckpts=1",
    "evaluation=None",
]


def _cli(work: Path, *opts: str, launcher=(sys.executable,), env=None):
    return subprocess.run(
        [*launcher, str(ROOT / "train.py"), "--config", str(TINY), "--work-dir", str(work)]
        + ["--cfg-options", *OPTS, *opts],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_two_processes_agree_on_commits_and_failures(tmp_path):
    sync = _cli(tmp_path / "sync", launcher=LAUNCH2)
    assert sync.returncode == 0, sync.stderr[-3000:]
    res = _cli(tmp_path / "async", "checkpoint_config.async_save=True", launcher=LAUNCH2)
    assert res.returncode == 0, res.stderr[-3000:]
    assert read_latest_pointer(tmp_path / "async") == tmp_path / "async" / "epoch_3"
    _assert_same(tmp_path / "async" / "epoch_3", tmp_path / "sync" / "epoch_3")

    env = {faults.FAIL_ENV: "before_rename:2"}
    work = tmp_path / "fail"
    res = _cli(work, "checkpoint_config.async_save=True", launcher=LAUNCH2, env=env)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert out.count("acchooks: error: checkpoint epoch_2: the background save") == 1, out[-3000:]
    assert "CheckpointSaveError" not in out  # no traceback of ours (the launcher prints its own)
    assert find_latest(work, verify="checksum") == (work / "epoch_1", [])
    assert not (work / "epoch_3").exists()


@pytest.mark.slow
def test_cli_dry_run_and_failure_exit(tmp_path):
    res = _cli(tmp_path / "dry", "checkpoint_config.async_save=True", "--dry-run")
    assert res.returncode == 0, res.stderr[-3000:]
    work = tmp_path / "fail"
    res = _cli(work, "checkpoint_config.async_save=True", env={faults.FAIL_ENV: "model:2"})
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-3000:]
    assert out.count("acchooks: error:") == 1 and "Traceback" not in out
    assert find_latest(work, verify="checksum") == (work / "epoch_1", [])


@pytest.mark.parametrize(
    ("option", "pattern"),
    [
        (dict(asyn_save=True), r"checkpoint_config.*asyn_save.*did you mean 'async_save'"),
        (dict(async_save="yes"), r"checkpoint_config.async_save"),
    ],
)
def test_async_save_option_is_checked_before_the_run(tmp_path, option, pattern):
    from acchooks.errors import ConfigError

    cfg = _cfg(tmp_path, checkpoint_config=dict(interval=1, **option))
    with pytest.raises(ConfigError, match=pattern):
        run_config(cfg)
    assert not list(tmp_path.glob("epoch_*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_writer_thread_runs_nicer_than_training(tmp_path):
    """The background write yields the CPU to training (nice), the training thread keeps
    its priority, and the writer's times are recorded."""
    import threading

    from acchooks.runner.async_save import WRITER_NICE, BackgroundSaver

    base = os.getpriority(os.PRIO_PROCESS, 0)  # Linux: the calling thread's nice
    seen = {}

    def job() -> bool:
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return True

    saver = BackgroundSaver()
    saver.submit("iter_1", str(tmp_path / "iter_1"), job)
    assert saver.outcome(block=True) == {"finite": True}
    assert saver.close() is None
    assert seen["nice"] == min(19, base + WRITER_NICE) > base or base == 19
    assert os.getpriority(os.PRIO_PROCESS, 0) == base
    assert len(saver.write_seconds) == len(saver.write_cpu_seconds) == 1
