"""The owners of the run's concepts, through the public interface: where checkpoints go
(one Checkpointer, mmcv's ``out_dir``), the TrainState a checkpoint records, and the
protocol methods one hook offers another."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from acchooks import HOOKS, Hook
from acchooks.testing import run_config, tiny_config


def test_best_checkpoints_follow_mmcv_out_dir(tmp_path):
    """mmcv >= 1.3.16: EvalHook(out_dir=X) saves best checkpoints to X/<work dir name>,
    as CheckpointHook(out_dir=X) does; without out_dir, to the work dir."""
    out = tmp_path / "shared"
    work = tmp_path / "exp1"
    cfg = tiny_config(
        work,
        checkpoint_config=dict(interval=1, out_dir=str(out)),
        evaluation=dict(interval=1, save_best="auto", out_dir=str(out)),
    )
    runner = run_config(cfg)
    assert sorted(p.name for p in (out / "exp1").glob("epoch_*")) == ["epoch_1", "epoch_2"]
    best = list((out / "exp1").glob("best_accuracy_top-1_*"))
    assert len(best) == 1, sorted(p.name for p in out.rglob("*"))
    assert not list(out.glob("best_*")), "best checkpoints belong under <out_dir>/<work dir>"
    assert runner.checkpointer.directory == str(out / "exp1")
    assert runner.checkpointer.latest.name == "epoch_2"


def test_best_checkpoint_defaults_to_the_work_dir(tmp_path):
    out = tmp_path / "ckpts"
    cfg = tiny_config(
        tmp_path / "exp",
        checkpoint_config=dict(interval=1, out_dir=str(out)),
        evaluation=dict(interval=1, save_best="auto"),
    )
    run_config(cfg)
    assert list((tmp_path / "exp").glob("best_accuracy_top-1_*"))
    assert not list(out.rglob("best_*"))


def test_resume_auto_looks_in_the_out_dir(tmp_path):
    out = tmp_path / "ckpts"
    first = tiny_config(tmp_path / "exp", checkpoint_config=dict(interval=1, out_dir=str(out)))
    run_config(first)
    again = tiny_config(
        tmp_path / "exp",
        checkpoint_config=dict(interval=1, out_dir=str(out)),
        runner=dict(max_epochs=3),
        resume_from="auto",
    )
    runner = run_config(again)
    assert runner.epoch == 3 and runner.state.epochs_done == 3
    assert sorted(p.name for p in (out / "exp").glob("epoch_*")) == [
        "epoch_1",
        "epoch_2",
        "epoch_3",
    ]


def test_checkpoint_records_the_train_state_progress(tmp_path):
    """Each saved counter is work done at the save: after epoch 1 of 4 batches of 8
    samples, 1 epoch, 4 iterations, 0 batches of the next epoch, 4 steps, 32 samples."""
    run_config(tiny_config(tmp_path, checkpoint_config=dict(interval=1)))
    manifest = json.loads((tmp_path / "epoch_1" / "manifest.json").read_text())
    meta = manifest["meta"]
    assert (meta["epoch"], meta["iter"], meta["inner_iter"], meta["step"]) == (1, 4, 0, 4)
    assert meta["samples"] == 32


def test_iteration_checkpoint_records_the_position_in_the_epoch(tmp_path):
    cfg = tiny_config(
        tmp_path,
        runner=dict(_delete_=True, type="IterBasedRunner", max_iters=6),
        checkpoint_config=dict(interval=3, by_epoch=False),
    )
    runner = run_config(cfg)
    meta = json.loads((tmp_path / "iter_6" / "manifest.json").read_text())["meta"]
    # 4 batches per pass: iteration 6 is batch 2 of the second pass
    assert (meta["epoch"], meta["iter"], meta["inner_iter"], meta["step"]) == (1, 6, 2, 6)
    assert (runner.epoch, runner.iter, runner.step) == (1, 6, 6)


def test_misspelled_protocol_method_is_an_error_at_class_definition():
    with pytest.raises(TypeError, match="evaluation_weight.*did you mean 'evaluation_weights'"):

        class Bad(Hook):
            def evaluation_weight(self, runner):
                pass


@HOOKS.register_module(force=True)
class CountingWeightsHook(Hook):
    """Offers evaluation weights and a progress callback: counts how EvalHook uses them."""

    def __init__(self) -> None:
        self.entered = 0
        self.batches = 0

    @contextmanager
    def evaluation_weights(self, runner):
        self.entered += 1
        yield

    @contextmanager
    def evaluation_progress(self, runner, total):
        yield self._tick

    def _tick(self) -> None:
        self.batches += 1


def test_evaluation_uses_every_hooks_declared_protocol(tmp_path):
    cfg = tiny_config(
        tmp_path,
        evaluation=dict(interval=1),
        custom_hooks=[dict(type="CountingWeightsHook")],
    )
    hook = run_config(cfg).hooks.get("CountingWeightsHook")
    assert hook.entered == 2  # one evaluation per epoch
    assert hook.batches == 2 * 3  # 20 val samples in batches of 8


def test_the_latest_pointer_names_a_checkpoint_wherever_one_is_expected(tmp_path):
    """``<work_dir>/latest`` is a small text file naming the newest checkpoint; given as a
    checkpoint (load_from, resume_from, ``acchooks test --checkpoint``) it means that one."""
    import subprocess
    import sys

    first = run_config(tiny_config(tmp_path / "a", checkpoint_config=dict(interval=1)))
    latest = tmp_path / "a" / "latest"
    assert latest.read_text().strip() == "epoch_2"
    resumed = run_config(
        tiny_config(tmp_path / "b", runner=dict(max_epochs=3), resume_from=str(latest))
    )
    assert resumed.epoch == 3 and resumed.step == first.step + 4
    loaded = run_config(
        tiny_config(tmp_path / "c", runner=dict(max_epochs=1), load_from=str(latest))
    )
    assert loaded.step == 4
    cfg = tmp_path / "tiny.py"
    tiny_config(tmp_path / "a").dump(str(cfg))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "acchooks",
            "test",
            "--config",
            str(cfg),
            "--checkpoint",
            str(latest),
            "--split",
            "val",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
