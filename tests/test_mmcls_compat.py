"""MMClassification 0.x configs as written: the config idioms and schedules of issue 14.

tests/data/mmcls/ holds configs written the way MMClassification writes its own
(``{{_base_.xxx}}``, ``_deprecation_``, helper variables, ``paramwise_cfg`` with the
``_delete`` typo, ``CosineAnnealingCooldown``, mmcv's checkpoint/evaluation/fp16 idioms).
tools/dev/check_mmcls_configs.py runs the real ones.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy_mlp import mlp_config

from acchooks.config import Config
from acchooks.config.schema import check_or_raise
from acchooks.errors import ConfigError
from acchooks.testing import run_config, tiny_config

DATA = Path(__file__).parent / "data" / "mmcls"
STYLE = DATA / "mmcls_style.py"
ROOT = Path(__file__).parent.parent


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _checked(cfg):
    """(config, warnings) after the config check."""
    return cfg, check_or_raise(cfg, cfg.filename)


def _records(work_dir, mode="train"):
    (log,) = Path(work_dir).glob("*.log.json")
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in recs if r.get("mode") == mode]


# ------------------------------------------------------------------ {{_base_.xxx}}
def test_base_references_are_the_merged_bases_values():
    cfg = Config.fromfile(STYLE)
    base = Config.fromfile(DATA / "_base_" / "tiny_data.py")
    assert cfg.pipeline == [
        dict(type="AutoAugment", policies=base.policy_imagenet),
        base.img_norm_cfg["mean"],  # a dotted reference
    ]


def test_base_reference_to_a_missing_key_names_it(tmp_path):
    _write(tmp_path, "base.py", "policies = [1, 2]\n")
    path = _write(tmp_path, "cfg.py", "_base_ = 'base.py'\nx = dict(p={{_base_.policie}})\n")
    with pytest.raises(ConfigError, match=r"_base_\.policie.*no key 'policie'.*'policies'"):
        Config.fromfile(path)


# ------------------------------------------------------------------ _deprecation_, _delete
def test_deprecation_warns_with_mmcvs_message():
    cfg, warnings = _checked(Config.fromfile(STYLE))
    assert "_deprecation_" not in cfg
    assert (
        f"The config file {STYLE} will be deprecated in the future. Please use "
        "mmcls_style_new.py instead. More information can be found at "
        "https://github.com/open-mmlab/mmclassification/pull/1"
    ) in warnings


def test_delete_typo_is_ignored_as_mmcv_with_a_did_you_mean():
    cfg, warnings = _checked(Config.fromfile(STYLE))
    # mmcv ignores '_delete': the dict is merged with the inherited paramwise_cfg
    assert cfg.optimizer.paramwise_cfg == dict(
        custom_keys={".bias": dict(decay_mult=0.0)}, norm_decay_mult=0.0, bias_decay_mult=0.0
    )
    assert any(
        w.startswith("optimizer.paramwise_cfg: key '_delete' is ignored")
        and "did you mean '_delete_'" in w
        for w in warnings
    )


# ------------------------------------------------------------------ helper variables
def test_helper_variables_read_by_the_config_are_a_warning():
    cfg, warnings = _checked(Config.fromfile(STYLE))
    (helpers,) = [w for w in warnings if w.startswith("top-level names used only")]
    # 'checkpoint' and 'data_root' are close to real keys, yet read by the config itself
    for name in ("checkpoint", "data_root", "img_norm_cfg", "paramwise_cfg", "policy_imagenet"):
        assert name in helpers


def test_a_misspelled_key_that_nothing_reads_is_still_an_error(tmp_path):
    text = STYLE.read_text().replace('ann_file = data_root + "meta/train.txt"', "")
    path = _write(tmp_path, "mmcls_style.py", text.replace("_base_/", f"{DATA}/_base_/"))
    text = path.read_text() + "checkpoint_cfg = dict(interval=1)\n"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        _checked(Config.fromfile(path))
    assert e.value.problems == [
        "data_root: unknown top-level key; did you mean 'data'?",
        "checkpoint_cfg: unknown top-level key; did you mean 'checkpoint_config'?",
    ]


def test_a_dumped_config_keeps_its_helpers(tmp_path):
    cfg = Config.fromfile(STYLE)
    cfg.dump(tmp_path / "dumped.py")
    again = Config.fromfile(tmp_path / "dumped.py")
    assert again.helpers == cfg.helpers and "_helpers_" not in again
    check_or_raise(again, "dumped.py")


# ------------------------------------------------------------------ CosineAnnealingCooldown
EPOCHS, ITERS = 3, 4  # toy_mlp: 32 samples / 8 per batch


def mmcls_cooldown(base, progress, max_progress, min_lr, cool_down_time, cool_down_ratio):
    """mmcls/core/hook/lr_updater.py CosineAnnealingCooldownLrUpdaterHook.get_lr."""
    target_lr = min_lr
    if progress > max_progress - cool_down_time:
        return target_lr * cool_down_ratio
    max_progress = max_progress - cool_down_time
    factor = progress / max_progress
    return target_lr + 0.5 * (base - target_lr) * (math.cos(math.pi * factor) + 1)


@pytest.mark.parametrize("by_epoch,cool_down_time", [(True, 1), (False, 4)])
def test_cosine_annealing_cooldown_is_mmcls_formula(tmp_path, by_epoch, cool_down_time):
    lr_config = dict(
        _delete_=True,
        policy="CosineAnnealingCooldown",
        min_lr=1e-4,
        cool_down_time=cool_down_time,
        cool_down_ratio=0.5,
        by_epoch=by_epoch,
    )
    run_config(mlp_config(tmp_path, runner=dict(max_epochs=EPOCHS), lr_config=lr_config))
    recs = _records(tmp_path)
    assert len(recs) == EPOCHS * ITERS
    for r in recs:
        it, ep = r["step"] - 1, r["epoch"] - 1
        progress, total = (ep, EPOCHS) if by_epoch else (it, EPOCHS * ITERS)
        want = mmcls_cooldown(0.01, progress, total, 1e-4, cool_down_time, 0.5)
        assert r["lr"] == pytest.approx(want, rel=1e-12), (it, ep)


# ------------------------------------------------------------------ IterBasedRunner eval
def test_iter_based_runner_evaluates_every_interval_iterations(tmp_path):
    cfg = tiny_config(
        tmp_path,
        runner=dict(_delete_=True, type="IterBasedRunner", max_iters=6),
        evaluation=dict(interval=3, metric="accuracy"),  # no by_epoch, as MMClassification
        checkpoint_config=None,
        lr_config=dict(by_epoch=False),
    )
    run_config(cfg)
    assert [r["iter"] for r in _records(tmp_path, "val")] == [3, 6]


# ------------------------------------------------------------------ fp16 loss scale
def _scaler_after_overflow(loss_scale):
    from accelerate.utils import GradScalerKwargs

    from acchooks.runner.loss_scale import pin_scale, scaler_settings

    kwargs, static = scaler_settings(loss_scale)
    handler = GradScalerKwargs(**kwargs)
    scaler = torch.amp.GradScaler("cpu", **handler.to_kwargs())
    if static is not None:
        pin_scale(scaler, static)
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    for grad in (float("inf"), 1.0, 1.0):  # an overflow, then two good steps
        opt.zero_grad()
        scaler.scale((p * grad).sum()).backward()
        scaler.step(opt)
        scaler.update()
    return scaler.get_scale()


def test_a_number_is_a_static_loss_scale_as_in_mmcv():
    assert _scaler_after_overflow(512.0) == 512.0
    assert _scaler_after_overflow("dynamic") == 2.0**16 * 0.5  # backed off once
    grown = dict(init_scale=8.0, growth_interval=1, growth_factor=2.0, backoff_factor=0.5)
    assert _scaler_after_overflow(grown) == 8.0 * 0.5 * 2 * 2


@pytest.mark.parametrize(
    "fp16,match",
    [
        (dict(loss_scale=-1.0), r"fp16.loss_scale: expected 'dynamic', a positive number"),
        (dict(loss_scale=dict(init_scal=1.0)), r"fp16.loss_scale: expected"),
        (dict(loss_scal=512.0), r"fp16: unexpected key 'loss_scal'; did you mean 'loss_scale'"),
    ],
)
def test_bad_fp16_is_a_config_error(tmp_path, fp16, match):
    with pytest.raises(ConfigError, match=match):
        check_or_raise(tiny_config(tmp_path, fp16=fp16), "x.py")


def test_fp16_optimizer_hook_becomes_fp16_and_the_optimizer_hook(tmp_path):
    cfg = tiny_config(
        tmp_path,
        optimizer_config=dict(
            type="Fp16OptimizerHook", loss_scale="dynamic", grad_clip=None, distributed=True
        ),
    )
    warnings = check_or_raise(cfg, "x.py")
    assert cfg.fp16 == dict(loss_scale="dynamic")
    assert cfg.optimizer_config == dict(type="OptimizerHook", grad_clip=None)
    assert any("Fp16OptimizerHook" in w and "distributed" in w for w in warnings)


# ------------------------------------------------------------------ cumulative_iters
def test_cumulative_iters_schedules_count_iterations_as_mmcv(tmp_path):
    warmup = dict(warmup="linear", warmup_iters=6, warmup_ratio=0.1)
    cfg = mlp_config(
        tmp_path,
        runner=dict(max_epochs=2),
        optimizer_config=dict(type="GradientCumulativeOptimizerHook", cumulative_iters=2),
        lr_config=dict(_delete_=True, policy="fixed", **warmup),
    )
    warnings = check_or_raise(cfg, "x.py")
    assert cfg.lr_config["unit"] == "iter" and any("unit='iter'" in w for w in warnings)
    run_config(cfg)
    for r in _records(tmp_path):
        it = (r["epoch"] - 1) * ITERS + r["iter"] - 1  # mmcv's runner.iter
        k = 1 - (1 - it / 6) * (1 - 0.1) if it < 6 else 1.0  # warmup_iters are iterations
        assert r["lr"] == pytest.approx(0.01 * k, rel=1e-12), it


def test_schedule_unit_step_counts_optimizer_steps(tmp_path):
    cfg = mlp_config(
        tmp_path,
        runner=dict(max_epochs=2),
        optimizer_config=dict(cumulative_iters=2),
        lr_config=dict(_delete_=True, policy="step", step=[2], by_epoch=False, unit="step"),
    )
    run_config(cfg)
    assert [r["lr"] for r in _records(tmp_path)][::2] == pytest.approx([0.01, 0.01, 1e-3, 1e-3])


# ------------------------------------------------------------------ mmcv idioms
def test_total_epochs_becomes_the_runner(tmp_path):
    cfg = tiny_config(tmp_path)
    del cfg["runner"]
    cfg.total_epochs = 3
    warnings = check_or_raise(cfg, "x.py")
    assert cfg.runner == dict(type="EpochBasedRunner", max_epochs=3) and "total_epochs" not in cfg
    assert any("config is now expected to have a `runner` section" in w for w in warnings)
    bad = tiny_config(tmp_path, total_epochs=5)  # runner says max_epochs=2
    with pytest.raises(ConfigError, match=r"total_epochs: 5 disagrees with runner.max_epochs=2"):
        check_or_raise(bad, "x.py")


def test_checkpoint_and_evaluation_idioms_are_accepted_with_a_note():
    cfg, warnings = _checked(Config.fromfile(STYLE))
    assert cfg.checkpoint_config == dict(interval=1)
    assert cfg.custom_hooks == [dict(type="SyncBuffersHook", priority="ABOVE_NORMAL")]
    assert cfg.evaluation == dict(interval=1, metric="accuracy")
    for key in ("create_symlink", "filename_tmpl", "sync_buffer", "gpu_collect", "tmpdir"):
        assert any(key in w for w in warnings), key


def test_ipu_runner_is_refused_with_the_reason(tmp_path):
    cfg = tiny_config(tmp_path, runner=dict(ipu_model_cfg=dict(), options_cfg=dict()))
    with pytest.raises(
        ConfigError, match=r"runner: ipu_model_cfg, options_cfg configure mmcv's IPU"
    ):
        check_or_raise(cfg, "x.py")


def test_ipu_fp16_options_are_refused_with_the_reason(tmp_path):
    cfg = tiny_config(tmp_path, fp16=dict(loss_scale=256.0, accum_type="half"))
    with pytest.raises(ConfigError, match=r"fp16.accum_type: .*mmcv's IPU \(Graphcore\)"):
        check_or_raise(cfg, "x.py")


@pytest.mark.slow
def test_mmcls_style_config_dry_run(tmp_path):
    res = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(STYLE), "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "will be deprecated in the future" in res.stdout
    assert "Dry run OK" in res.stdout
