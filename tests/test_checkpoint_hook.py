"""CheckpointHook options: interval, by_epoch, save_last, out_dir, save_optimizer and
retention (max_keep_ckpts) over the checkpoints that exist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import acchooks.checkpoint as ckpt_pkg
from acchooks.checkpoint import CheckpointError, find_latest, load_checkpoint, read_latest_pointer
from acchooks.errors import ConfigError
from acchooks.hooks import CheckpointHook
from acchooks.testing import run_config, tiny_config


def _names(d: Path, prefix: str = "epoch_") -> list[str]:
    return sorted(
        (p.name for p in d.iterdir() if p.name.startswith(prefix)),
        key=lambda n: int(n.split("_")[1]),
    )


def _complete(d: Path) -> list[str]:
    out = []
    for p in d.iterdir():
        try:
            ckpt_pkg.verify_checkpoint(p)
            out.append(p.name)
        except CheckpointError:
            pass
    return sorted(out)


def test_max_keep_one_keeps_previous_until_new_is_committed(tmp_path, monkeypatch):
    real = ckpt_pkg.remove_checkpoint
    seen = []

    def spy(path):
        # at the moment of every removal: the new checkpoint is committed and latest,
        # and the one being removed is still complete: two complete checkpoints exist
        seen.append((Path(path).name, _complete(tmp_path), read_latest_pointer(tmp_path).name))
        real(path)

    monkeypatch.setattr(ckpt_pkg, "remove_checkpoint", spy)
    run_config(
        tiny_config(
            tmp_path,
            runner=dict(max_epochs=3),
            checkpoint_config=dict(interval=1, max_keep_ckpts=1),
        )
    )
    assert seen == [
        ("epoch_1", ["epoch_1", "epoch_2"], "epoch_2"),
        ("epoch_2", ["epoch_2", "epoch_3"], "epoch_3"),
    ]
    assert _names(tmp_path) == ["epoch_3"]
    assert find_latest(tmp_path) == (tmp_path / "epoch_3", [])


def test_retention_uses_the_checkpoints_that_exist(tmp_path):
    # interval 2 + save_last over 5 epochs saves epoch_2, epoch_4, epoch_5: guessing the
    # old name from the interval (mmcv: epoch_5 - 2*2 = epoch_1) would never remove epoch_2
    (tmp_path / "epoch_9").mkdir()  # not a checkpoint (no manifest): never touched
    (tmp_path / "epoch_9" / "notes.txt").write_text("mine")
    run_config(
        tiny_config(
            tmp_path,
            runner=dict(max_epochs=5),
            checkpoint_config=dict(interval=2, max_keep_ckpts=2),
        )
    )
    assert _names(tmp_path) == ["epoch_4", "epoch_5", "epoch_9"]
    assert (tmp_path / "epoch_9" / "notes.txt").read_text() == "mine"
    assert read_latest_pointer(tmp_path) == tmp_path / "epoch_5"


def test_retention_never_removes_the_new_one(tmp_path):
    # a higher-numbered checkpoint left by an earlier run must not make rotation delete
    # the checkpoint just written
    run_config(
        tiny_config(tmp_path / "old", runner=dict(max_epochs=1), checkpoint_config=dict(interval=1))
    )
    os.rename(tmp_path / "old" / "epoch_1", tmp_path / "epoch_7")
    run_config(
        tiny_config(
            tmp_path,
            runner=dict(max_epochs=1),
            checkpoint_config=dict(interval=1, max_keep_ckpts=1),
        )
    )
    assert _names(tmp_path) == ["epoch_1"]


@pytest.mark.parametrize(
    "save_last, expected", [(True, ["epoch_2", "epoch_3"]), (False, ["epoch_2"])]
)
def test_save_last(tmp_path, save_last, expected):
    run_config(
        tiny_config(
            tmp_path,
            runner=dict(max_epochs=3),
            checkpoint_config=dict(interval=2, save_last=save_last),
        )
    )
    assert _names(tmp_path) == expected


def test_by_iter_names_and_counters(tmp_path):
    # 32 samples / 8 per batch = 4 iterations per epoch, 8 in all: iter_3, iter_6, iter_8
    run_config(
        tiny_config(
            tmp_path,
            runner=dict(max_epochs=2),
            checkpoint_config=dict(interval=3, by_epoch=False, max_keep_ckpts=2),
        )
    )
    assert _names(tmp_path, "iter_") == ["iter_6", "iter_8"]
    assert not _names(tmp_path, "epoch_")
    c = load_checkpoint(tmp_path / "iter_6")
    assert (c.meta["iter"], c.meta["epoch"], c.state["counters"]["inner_iter"]) == (6, 1, 2)


def test_iter_based_runner(tmp_path):
    run_config(
        tiny_config(
            tmp_path,
            runner=dict(_delete_=True, type="IterBasedRunner", max_iters=6),
            checkpoint_config=dict(interval=4, by_epoch=False),
            log_config=dict(hooks=[dict(type="TextLoggerHook", by_epoch=False)]),
        )
    )
    assert _names(tmp_path, "iter_") == ["iter_4", "iter_6"]
    assert load_checkpoint(tmp_path / "iter_6").meta["iter"] == 6


def test_out_dir(tmp_path):
    work, out = tmp_path / "run1", tmp_path / "store"
    run_config(
        tiny_config(
            work,
            runner=dict(max_epochs=2),
            checkpoint_config=dict(interval=1, out_dir=str(out), max_keep_ckpts=1),
        )
    )
    # mmcv: <out_dir>/<basename of work_dir>
    assert _names(out / "run1") == ["epoch_2"]
    assert read_latest_pointer(out / "run1") == out / "run1" / "epoch_2"
    assert not _names(work)


def test_save_optimizer_false_is_weights_only(tmp_path):
    run_config(
        tiny_config(
            tmp_path / "a",
            runner=dict(max_epochs=1),
            checkpoint_config=dict(interval=1, save_optimizer=False),
        )
    )
    ckpt = tmp_path / "a" / "epoch_1"
    c = load_checkpoint(ckpt)
    assert c.optimizer_state is None and not (ckpt / "optimizer.safetensors").exists()
    with pytest.raises(ConfigError, match=rf"resume_from: {ckpt} holds weights only.*load_from"):
        run_config(tiny_config(tmp_path / "b", resume_from=str(ckpt)))
    runner = run_config(
        tiny_config(
            tmp_path / "c",
            load_from=str(ckpt),
            runner=dict(max_epochs=1),
            optimizer=dict(lr=0.0, momentum=0.0),
        )
    )
    # lr 0: the parameters stay those loaded (BatchNorm running stats still move)
    got = runner.unwrapped_model.state_dict()
    for k, v in c.model_state.items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(got[k], v), k


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(interval="1"), "interval: expected -1 or a positive int"),
        (dict(max_keep_ckpts=1.5), "max_keep_ckpts: expected an int"),
        (dict(out_dir=3), "out_dir: expected a path"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CheckpointHook(**kwargs)
