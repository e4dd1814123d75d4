"""Exact resume: stop, resume, finish == never stopped (weights, optimizer, losses)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from acchooks.testing import launch_command, run_config, tiny_config, train_losses

# random augmentation (hflip), dropout, warmup, AdamW state, worker processes
RESUMABLE = dict(
    model=dict(drop_rate=0.3),
    data=dict(workers_per_gpu=2, train=dict(num_samples=40)),  # 5 iterations per epoch
    optimizer=dict(_delete_=True, type="AdamW", lr=1e-3, weight_decay=0.05),
    lr_config=dict(
        _delete_=True, policy="step", step=[2], warmup="linear", warmup_iters=7, warmup_ratio=0.1
    ),
    checkpoint_config=dict(interval=3, by_epoch=False),
    runner=dict(max_epochs=3),
    workflow=[("train", 1)],
)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    work = tmp_path_factory.mktemp("straight")
    run_config(tiny_config(work, **RESUMABLE))
    return work


def _assert_same_final_state(a: Path, b: Path, name: str = "iter_15"):
    for f in ("model.safetensors", "optimizer.safetensors"):
        ta, tb = load_file(str(a / name / f)), load_file(str(b / name / f))
        assert ta.keys() == tb.keys()
        for k in ta:
            assert torch.equal(ta[k], tb[k]), f"{f}: {k} differs"
    assert json.loads((a / name / "optimizer.json").read_text()) == json.loads(
        (b / name / "optimizer.json").read_text()
    )


@pytest.mark.parametrize("resume_at", ["iter_6", "iter_9"], ids=["mid-epoch-2", "mid-epoch-2-late"])
def test_resume_mid_epoch_is_bit_exact(straight, tmp_path, resume_at):
    shutil.copytree(straight / resume_at, tmp_path / resume_at)
    cfg = tiny_config(tmp_path, **RESUMABLE, resume_from=str(tmp_path / resume_at))
    runner = run_config(cfg)
    assert runner.iter == 15 and runner.epoch == 3
    _assert_same_final_state(straight, tmp_path)
    done = int(resume_at.split("_")[1])
    assert train_losses(tmp_path) == train_losses(straight)[done:]


def test_resume_at_epoch_boundary_is_bit_exact(straight, tmp_path):
    # iter-interval saves at 3, 6, 9, 12, 15; an epoch ends every 5 iterations: use an
    # epoch checkpoint from a run that also saves by epoch
    work = tmp_path / "by_epoch"
    run_config(
        tiny_config(
            work,
            **{
                **RESUMABLE,
                "runner": dict(max_epochs=1),
                "checkpoint_config": dict(interval=1, by_epoch=True),
            },
        )
    )
    cfg = tiny_config(tmp_path / "resumed", **RESUMABLE, resume_from=str(work / "epoch_1"))
    run_config(cfg)
    _assert_same_final_state(straight, tmp_path / "resumed")
    assert train_losses(tmp_path / "resumed") == train_losses(straight)[5:]


def test_resume_auto_picks_newest_and_fresh_start_when_none(straight, tmp_path):
    shutil.copytree(straight / "iter_6", tmp_path / "iter_6")
    shutil.copytree(straight / "iter_9", tmp_path / "iter_9")
    runner = run_config(tiny_config(tmp_path, **RESUMABLE, resume_from="auto"))
    assert train_losses(tmp_path) == train_losses(straight)[9:]
    assert runner.step == 15
    empty = tmp_path / "empty"
    runner = run_config(tiny_config(empty, **RESUMABLE, resume_from="auto"))
    assert "no complete checkpoint" in next(empty.glob("*.log")).read_text()
    assert train_losses(empty) == train_losses(straight)


def test_weights_only_checkpoint_cannot_resume(straight, tmp_path):
    from acchooks.errors import ConfigError

    work = tmp_path / "w"
    run_config(
        tiny_config(
            work,
            **{
                **RESUMABLE,
                "runner": dict(max_epochs=1),
                "checkpoint_config": dict(interval=1, save_optimizer=False),
            },
        )
    )
    with pytest.raises(ConfigError, match="weights only.*load_from"):
        run_config(tiny_config(tmp_path / "r", **RESUMABLE, resume_from=str(work / "epoch_1")))


def test_incompatible_resume_is_a_clear_error(straight, tmp_path):
    from acchooks.errors import ConfigError

    other = dict(
        RESUMABLE, model=dict(model_name="test_efficientnet"), resume_from=str(straight / "iter_6")
    )
    with pytest.raises(ConfigError, match=r"resume_from .*iter_6: .*(missing|unexpected)"):
        run_config(tiny_config(tmp_path / "a", **other))
    sgd = dict(
        RESUMABLE,
        optimizer=dict(_delete_=True, type="SGD", lr=0.1, momentum=0.9),
        resume_from=str(straight / "iter_6"),
    )
    with pytest.raises(ConfigError, match=r"resume_from .*iter_6: .*AdamW"):
        run_config(tiny_config(tmp_path / "b", **sgd))


def test_tensorboard_after_resume_has_each_step_once(straight, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # a run that logged 15 steps, "killed" after iter_9 was saved: resume into the same dir
    work = tmp_path / "w"
    cfg = dict(RESUMABLE, log_config=dict(interval=1, hooks=[dict(type="TensorboardLoggerHook")]))
    run_config(tiny_config(work, **cfg))
    run_config(tiny_config(work, **cfg, resume_from=str(work / "iter_9")))
    acc = EventAccumulator(str(work / "tf_logs"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 16))


@pytest.mark.slow
def test_resume_on_another_number_of_processes(tmp_path):
    """1 process x 16 per batch, stopped after 2 of 4 iterations of epoch 2; resumed on
    2 processes x 8: the 32 samples left of epoch 2 take 2 iterations, then epoch 3."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    tiny = root / "tests" / "data" / "tiny_cli.py"
    env = {**os.environ, "PYTHONPATH": str(root)}
    opts = [
        "--cfg-options",
        "runner.max_epochs=3",
        "checkpoint_config.interval=6",
        "checkpoint_config.by_epoch=False",
    ]
    res = subprocess.run(
        [
            sys.executable,
            str(root / "train.py"),
            "--config",
            str(tiny),
            "--work-dir",
            str(tmp_path),
            *opts,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    shutil.copytree(tmp_path / "iter_6", tmp_path / "r" / "iter_6")
    launcher = launch_command()
    res = subprocess.run(
        [
            *launcher,
            str(root / "train.py"),
            "--config",
            str(tiny),
            "--work-dir",
            str(tmp_path / "r"),
            "--resume",
            "auto",
            *opts,
            "data.samples_per_gpu=8",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "checkpoint written by 1 processes (global batch 16), now 2 processes" in res.stdout
    train = [r for r in losses_records(tmp_path / "r") if r.get("mode") == "train"]
    # epoch 2 continues at batch 3 of 4 (32 of 64 samples left), then all 4 of epoch 3
    assert [(r["epoch"], r["iter"]) for r in train] == [(2, 3), (2, 4)] + [
        (3, i) for i in (1, 2, 3, 4)
    ]


def losses_records(work: Path) -> list[dict]:
    (log,) = work.glob("*.log.json")
    return [json.loads(line) for line in log.read_text().splitlines()]
