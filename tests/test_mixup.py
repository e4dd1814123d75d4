"""Batch mixing: timm's Mixup exactly, draws a pure function of where the run is.

* the MixupHook's output equals timm's ``Mixup`` for the same draws (λ, box, per-element
  choices), every mode;
* λ and the mixup/CutMix choice over many batches follow timm's distribution;
* a resumed mixup run is bit-identical to the uninterrupted one (mid-epoch, worker
  processes; 2 processes in the slow test);
* MMClassification's ``model.train_cfg=dict(augments=[...])`` runs as written;
* soft targets get a loss that takes them, or a config error says why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from timm.data import Mixup

from acchooks import HOOKS, Hook
from acchooks.errors import ConfigError
from acchooks.hooks.mixup import MixupHook, draw_seed
from acchooks.testing import launch_command, run_config, same_weights, tiny_config, train_losses

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {
    "mixup": dict(mixup_alpha=0.8),
    "cutmix": dict(mixup_alpha=0.0, cutmix_alpha=1.0),
    "both": dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, prob=0.8),
    "minmax": dict(mixup_alpha=0.0, cutmix_minmax=[0.2, 0.8]),
}


def _batch(n: int = 8, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 16, 12, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_output_equals_timm_for_the_same_draws(mode, setting):
    args = dict(SETTINGS[setting], mode=mode, label_smoothing=0.1, num_classes=10)
    hook = MixupHook(**args)
    x, t = _batch()
    for it in range(20):
        seed = draw_seed(0, 1, it)
        np.random.seed([seed & 0xFFFFFFFF, seed >> 32])  # timm draws from the global RNG
        ref_x, ref_t = Mixup(**args)(x.clone(), t)
        np.random.seed(123)
        before = np.random.get_state()[1].copy()
        ours_x, ours_t = hook.mix(x.clone(), t, seed)
        assert torch.equal(ours_x, ref_x) and torch.equal(ours_t, ref_t), (setting, mode, it)
        # the global RNG is not used (checkpointed RNG state, other users of it)
        assert np.array_equal(np.random.get_state()[1], before)


def test_odd_batch_mixes_all_but_the_last_sample():
    hook = MixupHook(mixup_alpha=1.0, num_classes=10, label_smoothing=0.0)
    x, t = _batch(7)
    mixed, soft = hook.mix(x.clone(), t, draw_seed(0, 0, 0))
    ref_x, ref_t = hook.mix(x[:6].clone(), t[:6], draw_seed(0, 0, 0))
    assert torch.equal(mixed[:6], ref_x) and torch.equal(soft[:6], ref_t)
    assert torch.equal(mixed[6], x[6]) and soft[6].tolist() == torch.eye(10)[t[6]].tolist()


def _lam_and_kind(x, mixed, soft, t) -> tuple[float, str]:
    """λ of a batch-mode mix (label_smoothing 0, t[0] != t[-1]) and what it did."""
    lam = float(soft[0, t[0]])
    if torch.equal(mixed, x):
        return lam, "none"
    same = (mixed[0] == x[0]).float().mean().item()  # CutMix keeps the pixels off the box
    return lam, "cutmix" if same > 0 else "mixup"


def _ks_same_distribution(a: list[float], b: list[float], alpha: float = 1e-3) -> bool:
    """Two-sample Kolmogorov-Smirnov test: not rejected at level ``alpha``."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    critical = np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((len(a) + len(b)) / (len(a) * len(b)))
    return float(np.abs(fa - fb).max()) < critical


def test_lambda_and_mode_statistics_match_timm():
    args = dict(SETTINGS["both"], mode="batch", label_smoothing=0.0, num_classes=10)
    x, t = _batch(4)
    t[0], t[-1] = 1, 2
    ours, theirs = [], []
    hook, timm_mixup = MixupHook(**args), Mixup(**args)
    np.random.seed(2024)
    for it in range(3000):
        ours.append(_lam_and_kind(x, *hook.mix(x.clone(), t, draw_seed(7, it // 100, it)), t))
        theirs.append(_lam_and_kind(x, *timm_mixup(x.clone(), t), t))
    for kind, share in (("none", 0.2), ("mixup", 0.4), ("cutmix", 0.4)):
        a = sum(k == kind for _, k in ours) / len(ours)
        b = sum(k == kind for _, k in theirs) / len(theirs)
        assert abs(a - share) < 0.035 and abs(b - share) < 0.035, (kind, a, b)
        la = [lam for lam, k in ours if k == kind]
        lb = [lam for lam, k in theirs if k == kind]
        if kind != "none":
            assert _ks_same_distribution(la, lb), kind  # the same distribution of λ


# ---------------------------------------------------------------- in a run
@HOOKS.register_module(force=True)
class BatchRecorder(Hook):
    """Records the batch the forward pass gets (after the MixupHook, at LOWEST)."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def before_train_forward(self, runner) -> None:
        x, y = runner.data_batch[0], runner.data_batch[1]
        self.batches.append((runner.epoch, x.clone(), y.clone()))


def _recorded(runner) -> list:
    return runner.hooks.get("BatchRecorder").batches


MIX = dict(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem", label_smoothing=0.1)
RECORD = [dict(type="BatchRecorder", priority="LOWEST")]


def test_stage_gives_the_forward_the_mixed_batch_and_soft_loss(tmp_path):
    runner = run_config(
        tiny_config(
            tmp_path,
            mixup=dict(MIX, mixup_off_epoch=1),
            workflow=[("train", 1), ("val", 1)],  # val: plain labels, made one-hot
            custom_hooks=RECORD,
        )
    )
    assert type(runner.criterion).__name__ == "SoftTargetCrossEntropy"
    assert "before_train_forward:" in runner.get_hook_info()
    batches = _recorded(runner)
    assert len(batches) == 8
    for epoch, _, y in batches:
        assert y.shape == (8, 4) and torch.allclose(y.sum(1), torch.ones(8))
        if epoch >= 1:  # mixup_off_epoch: smoothed one-hot targets, as timm
            assert torch.allclose(y.max(1).values, torch.full((8,), 0.9 + 0.1 / 4))
    assert any(y.max() < 0.9 for e, _, y in batches if e == 0)  # epoch 0 mixed


RESUMABLE = dict(
    mixup=MIX,
    data=dict(workers_per_gpu=2, train=dict(num_samples=40)),  # 5 iterations per epoch
    optimizer=dict(_delete_=True, type="AdamW", lr=1e-3, weight_decay=0.05),
    checkpoint_config=dict(interval=3, by_epoch=False),
    runner=dict(max_epochs=2),
)


def test_mixup_resume_mid_epoch_is_bit_exact(tmp_path):
    straight = tmp_path / "straight"
    run_config(tiny_config(straight, **RESUMABLE))
    resumed = tmp_path / "resumed"
    shutil.copytree(straight / "iter_6", resumed / "iter_6")  # epoch 2, after its 1st batch
    run_config(tiny_config(resumed, **RESUMABLE, resume_from=str(resumed / "iter_6")))
    assert same_weights(straight / "iter_9", resumed / "iter_9")
    assert train_losses(resumed) == train_losses(straight)[6:]
    # and the mixing mattered: without it the run differs
    plain = tmp_path / "plain"
    run_config(tiny_config(plain, **{**RESUMABLE, "mixup": None}))
    assert train_losses(plain) != train_losses(straight)


# ---------------------------------------------------------------- MMClassification's form
AUGMENTS = [
    dict(type="BatchMixup", alpha=0.8, num_classes=4, prob=0.5),
    dict(type="BatchCutMix", alpha=1.0, num_classes=4, prob=0.5),
]


def test_mmcls_train_cfg_augments_run_as_written(tmp_path):
    runner = run_config(
        tiny_config(tmp_path, model=dict(train_cfg=dict(augments=AUGMENTS)), custom_hooks=RECORD)
    )
    m = runner.hooks.get("MixupHook").mixup
    assert (m.mixup_alpha, m.cutmix_alpha, m.mix_prob, m.switch_prob) == (0.8, 1.0, 1.0, 0.5)
    assert (m.label_smoothing, m.num_classes, m.mode) == (0.0, 4, "batch")
    assert all(y.shape == (8, 4) for _, _, y in _recorded(runner))


def test_mmcls_probabilities_below_one_leave_batches_unmixed(tmp_path):
    from acchooks.recipes.mixup import from_train_cfg

    one = [dict(AUGMENTS[0], prob=0.3), dict(AUGMENTS[1], prob=0.1)]
    opts, problems = from_train_cfg(dict(augments=one))
    assert not problems and opts["prob"] == pytest.approx(0.4)
    assert opts["switch_prob"] == pytest.approx(0.25)


def _problems(tmp_path, **overrides) -> str:
    with pytest.raises(ConfigError) as e:
        run_config(tiny_config(tmp_path, **overrides))
    return str(e.value)


def test_config_errors(tmp_path):
    resize = [*AUGMENTS, dict(type="BatchResizeMix", alpha=1.0, num_classes=4)]
    msg = _problems(tmp_path, model=dict(train_cfg=dict(augments=resize)))
    assert "model.train_cfg.augments[2] (BatchResizeMix): not supported" in msg
    bad = [dict(type="BatchMixup", alpha=0.8, num_classes=4, probb=0.5)]
    msg = _problems(tmp_path, model=dict(train_cfg=dict(augments=bad)))
    assert "unexpected argument 'probb'; did you mean 'prob'?" in msg
    msg = _problems(
        tmp_path, model=dict(train_cfg=dict(augments=[dict(AUGMENTS[0], prob=0.9)] + AUGMENTS[1:]))
    )
    assert "the probs add up to 1.4" in msg
    msg = _problems(
        tmp_path,
        mixup=dict(mixup_alpha=0.8),
        model=dict(loss=dict(type="LabelSmoothingCrossEntropy")),
    )
    assert "model.loss (LabelSmoothingCrossEntropy): takes class indices only" in msg
    msg = _problems(
        tmp_path,
        mixup=dict(mixup_alpha=0.8),
        model=dict(loss=dict(type="CrossEntropyLoss", label_smoothing=0.1)),
    )
    assert "smoothed twice" in msg
    assert "mixup.num_classes: 10 differs from model.num_classes 4" in _problems(
        tmp_path, mixup=dict(num_classes=10)
    )
    assert "unexpected key 'cutmix_alfa'; did you mean 'cutmix_alpha'?" in _problems(
        tmp_path, mixup=dict(cutmix_alfa=1.0)
    )
    assert "keep one of them" in _problems(
        tmp_path, mixup=dict(), model=dict(train_cfg=dict(augments=AUGMENTS))
    )
    assert "custom_hooks[0] (MixupHook): configure batch mixing" in _problems(
        tmp_path, custom_hooks=[dict(type="MixupHook")]
    )


def test_bce_with_target_threshold_takes_the_soft_targets(tmp_path):
    loss = dict(type="BinaryCrossEntropy", target_threshold=0.2)
    runner = run_config(
        tiny_config(
            tmp_path, mixup=dict(cutmix_alpha=1.0), model=dict(loss=loss), runner=dict(max_epochs=1)
        )
    )
    assert type(runner.criterion).__name__ == "BinaryCrossEntropy"
    assert runner.criterion.target_threshold == 0.2


# ---------------------------------------------------------------- 2 processes
def _launch(config: Path, work: Path, *extra: str) -> None:
    cmd = [*launch_command(), str(ROOT / "train.py"), "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [*cmd, "--work-dir", str(work), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.slow
def test_mixup_resume_with_two_processes_is_bit_exact(tmp_path):
    """2 processes x 8, 64 samples: 4 iterations per epoch; resumed after iteration 6."""
    config = tmp_path / "mix.py"
    config.write_text(
        f"_base_ = {str(ROOT / 'tests' / 'data' / 'tiny_cli.py')!r}\n"
        "mixup = dict(mixup_alpha=0.8, cutmix_alpha=1.0, mode='pair')\n"
        "sampler = dict(type='RepeatAugSampler', num_repeats=2, selected_round=0)\n"
        "data = dict(samples_per_gpu=8)\n"
        "evaluation = None\n"
        "checkpoint_config = dict(interval=3, by_epoch=False)\n"
    )
    opts = ["--cfg-options", "runner.max_epochs=3"]
    _launch(config, tmp_path / "a", *opts)
    shutil.copytree(tmp_path / "a" / "iter_6", tmp_path / "b" / "iter_6")
    _launch(config, tmp_path / "b", "--resume", "auto", *opts)
    assert same_weights(tmp_path / "a" / "iter_12", tmp_path / "b" / "iter_12")
    assert train_losses(tmp_path / "b") == train_losses(tmp_path / "a")[6:]
