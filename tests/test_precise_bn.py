"""PreciseBNHook (MMClassification's): BN statistics recomputed over training samples.

Checked through configs and runs: only the BN running statistics change, and they equal
an average recomputed by hand over the same batches (the raw weights, or the EMA's);
``interval``; MMClassification's config as written; bad arguments and priorities are
config errors; a run with the hook resumes bit-exactly; two processes end equal.
"""

from __future__ import annotations

import copy
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from acchooks import HOOKS, Hook
from acchooks.config import Config
from acchooks.config.schema import check_or_raise
from acchooks.errors import ConfigError
from acchooks.testing import TINY, run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
STATS = ("running_mean", "running_var")
# 32 samples in batches of 8: 4 iterations per epoch; 16 samples = the first 2 batches
PRECISE = dict(type="PreciseBNHook", num_samples=16, interval=1, priority="ABOVE_NORMAL")


@HOOKS.register_module(force=True)
class TrainBatchRecorder(Hook):
    """Keeps each epoch's train images (as the forward pass gets them), by epoch."""

    def __init__(self) -> None:
        self.images: dict[int, list[torch.Tensor]] = {}

    def before_train_iter(self, runner) -> None:
        self.images.setdefault(runner.epoch, []).append(runner.data_batch[0].clone())


def _run(work: Path, *hooks: dict, **overrides):
    recorder = dict(type="TrainBatchRecorder", priority="HIGHEST")
    cfg = tiny_config(
        work, custom_hooks=[recorder, *hooks], progress_config=dict(enable=False), **overrides
    )
    return run_config(cfg)


def _recorded(runner, epoch: int) -> list[torch.Tensor]:
    (rec,) = runner.hooks.find(TrainBatchRecorder)
    return rec.images[epoch]


def _hand_stats(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per BN layer, the mean over ``batches`` of each batch's input mean and unbiased
    variance per channel, from a copy of ``model`` in train mode."""
    model = copy.deepcopy(model).train()
    inputs: dict[str, torch.Tensor] = {}
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for name, bn in bns.items():
        bn.register_forward_pre_hook(lambda _m, args, name=name: inputs.__setitem__(name, args[0]))
    out = {f"{n}.{s}": torch.zeros(m.num_features) for n, m in bns.items() for s in STATS}
    with torch.no_grad():
        for images in batches:
            model(images)
            for name in bns:
                x = inputs[name].float()
                out[f"{name}.running_mean"] += x.mean((0, 2, 3)) / len(batches)
                out[f"{name}.running_var"] += x.var((0, 2, 3), correction=1) / len(batches)
    return out


def _is_stat(name: str) -> bool:
    return name.endswith(STATS)


def _log(work: Path) -> str:
    (log,) = [p for p in work.glob("*.log") if not p.name.endswith(".json")]
    return log.read_text()


# ---------------------------------------------------------------- what it computes
def test_only_bn_statistics_change_and_equal_a_recomputation(tmp_path):
    # dropout (before the head, after every BN): the hook's forwards must not draw from
    # the RNG that training uses
    plain = _run(tmp_path / "plain", model=dict(drop_rate=0.3))
    precise = _run(tmp_path / "precise", PRECISE, model=dict(drop_rate=0.3))
    a, b = plain.unwrapped_model.state_dict(), precise.unwrapped_model.state_dict()
    assert a.keys() == b.keys()
    stats = [k for k in a if _is_stat(k)]
    assert len(stats) > 10
    for k in a:  # parameters, num_batches_tracked: bitwise what training alone gives
        if not _is_stat(k):
            assert torch.equal(a[k], b[k]), k
    assert all(not torch.equal(a[k], b[k]) for k in stats)
    # the first 16 samples (2 batches) of the last epoch, with the weights after it
    want = _hand_stats(precise.unwrapped_model, _recorded(precise, 1)[:2])
    assert want.keys() == set(stats)
    for k in stats:
        torch.testing.assert_close(b[k], want[k], rtol=1e-4, atol=1e-6, msg=k)
    assert "PreciseBN (epoch 2): 15 BN layers, statistics averaged over 2 batches" in _log(
        tmp_path / "precise"
    )


def test_with_ema_the_statistics_are_the_evaluated_weights(tmp_path):
    ema = dict(type="EMAHook", momentum=0.2, warm_up=0)
    runner = _run(tmp_path, PRECISE, ema)
    (hook,) = [h for h in runner.hooks.hooks if type(h).__name__ == "EMAHook"]
    model = runner.unwrapped_model
    ema_model = copy.deepcopy(model)
    ema_model.load_state_dict(hook.ema_state_dict())
    assert not torch.equal(model.fc.weight, ema_model.fc.weight)  # EMA and raw differ
    batches = _recorded(runner, 1)[:2]
    with_ema, with_raw = _hand_stats(ema_model, batches), _hand_stats(model, batches)
    got = model.state_dict()
    for k, want in with_ema.items():
        torch.testing.assert_close(got[k], want, rtol=1e-4, atol=1e-6, msg=k)
        # the EMA's own buffer copy holds them too (its export is consistent)
        assert torch.equal(hook.ema_state_dict()[k], got[k]), k
    assert any(not torch.allclose(got[k], with_raw[k]) for k in with_raw)


def test_interval_is_respected(tmp_path):
    _run(tmp_path, dict(PRECISE, interval=2), runner=dict(max_epochs=5))
    done = [line for line in _log(tmp_path).splitlines() if "PreciseBN (epoch" in line]
    assert [line.split("PreciseBN (epoch ")[1].split(")")[0] for line in done] == ["2", "4"]


# ---------------------------------------------------------------- MMClassification config
MMCLS_CONFIG = """_base_ = 'base.py'

# Precise BN hook will update the bn stats, so this hook should be executed
# before CheckpointHook, which has priority of 'NORMAL'. So set the
# priority of PreciseBNHook to 'ABOVE_NORMAL' here.
custom_hooks = [
    dict(
        type='PreciseBNHook',
        num_samples=8192,
        interval=1,
        priority='ABOVE_NORMAL')
]
"""


def test_mmcls_config_as_written_checks_and_runs(tmp_path):
    base = dict(
        TINY,
        runner=dict(type="EpochBasedRunner", max_epochs=1),
        checkpoint_config=dict(interval=1),
        evaluation=dict(interval=1, metric="accuracy"),
        progress_config=dict(enable=False),
    )
    (tmp_path / "base.py").write_text("".join(f"{k} = {v!r}\n" for k, v in base.items()))
    (tmp_path / "precise.py").write_text(MMCLS_CONFIG)
    cfg = Config.fromfile(tmp_path / "precise.py")
    cfg["work_dir"] = str(tmp_path / "work")
    check_or_raise(cfg, cfg.filename)
    runner = run_config(cfg)
    assert runner.epoch == 1
    log = _log(tmp_path / "work")
    # 8192 samples asked for, an epoch (4 batches) available; before the checkpoint
    assert "statistics averaged over 4 batches (32 samples)" in log
    assert "hold the statistics from before PreciseBN" not in log
    saved = load_file(str(tmp_path / "work" / "epoch_1" / "model.safetensors"))
    for k, v in runner.unwrapped_model.state_dict().items():
        assert torch.equal(saved[k], v), k


# ---------------------------------------------------------------- config errors
@pytest.mark.parametrize(
    "args,message",
    [
        (dict(num_samples=0), r"custom_hooks\[0\].num_samples: expected a positive int, got 0"),
        (dict(interval=-1), r"custom_hooks\[0\].interval: expected a positive int, got -1"),
        (dict(num_samples="8k"), r"custom_hooks\[0\].num_samples: expected a positive int"),
        (dict(num_sample=8), r"unexpected key 'num_sample'; did you mean 'num_samples'"),
    ],
)
def test_bad_arguments_are_config_errors(tmp_path, args, message):
    cfg = tiny_config(tmp_path, custom_hooks=[dict(type="PreciseBNHook", **args)])
    with pytest.raises(ConfigError, match=message):
        check_or_raise(cfg, cfg.filename)
    if "num_sample" not in args:  # building it directly says the same
        with pytest.raises(ConfigError, match=f"PreciseBNHook.{next(iter(args))}"):
            HOOKS.build(dict(type="PreciseBNHook", **args))


def test_declared_options_are_the_constructor_signature():
    from acchooks.hooks.precise_bn import OPTIONS, PreciseBNHook

    params = list(inspect.signature(PreciseBNHook.__init__).parameters.values())[1:]
    assert {p.name: p.default for p in params} == OPTIONS.defaults()


def test_after_eval_hook_or_iter_based_is_a_config_error(tmp_path):
    late = dict(PRECISE, priority="LOWEST")
    with pytest.raises(ConfigError, match="runs after EvalHook"):
        _run(tmp_path / "late", late, evaluation=dict(interval=1))
    with pytest.raises(ConfigError, match="only epoch-based runs"):
        _run(
            tmp_path / "iters",
            PRECISE,
            runner=dict(_delete_=True, type="IterBasedRunner", max_iters=2),
        )


def test_at_the_default_custom_hooks_priority_checkpoints_hold_the_new_statistics(tmp_path):
    # NORMAL (custom_hooks' default) runs after CheckpointHook, but the checkpoint is
    # written once every hook of the stage has run: it holds the recomputed statistics
    hook = dict(type="PreciseBNHook", num_samples=8)
    runner = _run(tmp_path, hook, runner=dict(max_epochs=1), checkpoint_config=dict(interval=1))
    saved = load_file(str(tmp_path / "epoch_1" / "model.safetensors"))
    stats = {k: b for k, b in runner.unwrapped_model.named_buffers() if "running" in k}
    assert stats and all(torch.equal(saved[k], b) for k, b in stats.items())


# ---------------------------------------------------------------- exact resume
RESUMABLE = dict(
    model=dict(drop_rate=0.3),  # dropout: PreciseBN's forwards must not move the RNG
    data=dict(workers_per_gpu=2, train=dict(num_samples=32)),
    optimizer=dict(_delete_=True, type="AdamW", lr=1e-3, weight_decay=0.05),
    checkpoint_config=dict(interval=3, by_epoch=False),
    runner=dict(max_epochs=3),
)


@pytest.mark.parametrize("resume_at", ["iter_6", "iter_9"])
def test_resume_with_precise_bn_is_bit_exact(tmp_path, resume_at):
    straight = tmp_path / "straight"
    _run(straight, PRECISE, **RESUMABLE)
    shutil.copytree(straight / resume_at, tmp_path / resume_at)
    resumed = tmp_path / "resumed"
    _run(resumed, PRECISE, **RESUMABLE, resume_from=str(tmp_path / resume_at))
    for f in ("model.safetensors", "optimizer.safetensors"):
        want, got = (
            load_file(str(straight / "iter_12" / f)),
            load_file(str(resumed / "iter_12" / f)),
        )
        assert want.keys() == got.keys()
        for k in want:
            assert torch.equal(want[k], got[k]), f"{f}: {k} differs"


# ---------------------------------------------------------------- two processes
DDP = """
_base_ = '{tiny}'
checkpoint_config = None
evaluation = None
log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])
custom_imports = dict(imports=['acchooks_probes'], allow_failed_imports=False)
custom_hooks = [dict(type='BufferProbe', tag='before', priority='HIGHEST'),
                dict(type='PreciseBNHook', num_samples=32, priority='ABOVE_NORMAL'),
                dict(type='BufferProbe', tag='after', priority='LOWEST')]
"""


@pytest.mark.slow
def test_two_processes_end_with_the_same_statistics(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_misc_hooks import TWO_PROCS

    cfg = tmp_path / "ddp.py"
    cfg.write_text(DDP.format(tiny=ROOT / "tests" / "data" / "tiny_cli.py"))
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "data")])}
    cmd = [*TWO_PROCS, str(ROOT / "train.py"), "--config", str(cfg), "--work-dir", str(work)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for epoch in (1, 2):
        before = [load_file(str(work / f"before_epoch{epoch}_rank{r}.safetensors")) for r in (0, 1)]
        after = [load_file(str(work / f"after_epoch{epoch}_rank{r}.safetensors")) for r in (0, 1)]
        stats = [k for k in after[0] if _is_stat(k)]
        assert stats
        for k in after[0]:  # all-reduced: every process holds the same statistics
            assert torch.equal(after[0][k], after[1][k]), k
        assert all(not torch.equal(after[0][k], before[0][k]) for k in stats)
        for k in after[0]:  # nothing else changed
            if not _is_stat(k):
                assert torch.equal(after[0][k], before[0][k]), k
    assert "PreciseBN (epoch 2)" in res.stdout + res.stderr
