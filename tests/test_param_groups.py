"""paramwise_cfg (mmcv's DefaultOptimizerConstructor semantics) and timm's layer decay,
and schedules scaling every group from its own initial lr."""

from __future__ import annotations

import json
import re
from math import cos, pi

import pytest
import timm
import torch
from torch import nn
from toy_mlp import mlp_config

from acchooks.errors import ConfigError
from acchooks.optim import build_optimizer, check_optimizer_config
from acchooks.testing import run_config


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.dw = nn.Conv2d(4, 4, 3, groups=4, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def settings(opt):
    """parameter id -> (lr, weight_decay)."""
    return {id(p): (g["lr"], g.get("weight_decay")) for g in opt.param_groups for p in g["params"]}


def test_paramwise_mmcv_rules():
    model = Net()
    opt = build_optimizer(
        model,
        dict(
            type="SGD",
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            paramwise_cfg=dict(
                bias_lr_mult=2.0,
                bias_decay_mult=0.5,
                norm_decay_mult=0.0,
                dwconv_decay_mult=0.1,
                custom_keys={"head": dict(lr_mult=0.1, decay_mult=3)},
            ),
        ),
    )
    got = settings(opt)
    expect = {  # mmcv: custom key first; bias lr except norm bias; norm, dwconv, bias decay
        model.conv.weight: (0.1, 1e-4),
        model.conv.bias: (0.2, 0.5e-4),
        model.dw.weight: (0.1, 1e-5),
        model.bn.weight: (0.1, 0.0),
        model.bn.bias: (0.1, 0.0),
        model.head.weight: (0.1 * 0.1, 3e-4),
        model.head.bias: (0.1 * 0.1, 3e-4),
        model.frozen.weight: (0.1, 1e-4),
        model.frozen.bias: (0.1, 1e-4),
    }
    for p, (lr, wd) in expect.items():
        assert got[id(p)] == (pytest.approx(lr), pytest.approx(wd))
    assert len(opt.param_groups) == len({v for v in got.values()})  # merged


def test_paramwise_longest_custom_key_wins_and_timm_optimizer():
    model = Net()
    opt = build_optimizer(
        model,
        dict(
            type="adamw",
            lr=1e-3,
            weight_decay=0.05,
            paramwise_cfg=dict(
                custom_keys={"conv": dict(lr_mult=2.0), "conv.bias": dict(decay_mult=0.0)}
            ),
        ),
    )
    got = settings(opt)
    assert got[id(model.conv.weight)] == (pytest.approx(2e-3), pytest.approx(0.05))
    assert got[id(model.conv.bias)] == (pytest.approx(1e-3), 0.0)
    assert got[id(model.head.bias)] == (pytest.approx(1e-3), pytest.approx(0.05))


@pytest.mark.parametrize("opt_type", ["AdamW", "adamw"])
def test_layer_decay(opt_type):
    model = timm.create_model("test_vit", num_classes=4)
    opt = build_optimizer(model, dict(type=opt_type, lr=1e-3, weight_decay=0.05, layer_decay=0.5))
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs[-1] == pytest.approx(1e-3) and lrs[0] < 1e-3 / 2  # deeper layers scaled down
    assert all("lr_scale" not in g for g in opt.param_groups)  # baked into lr
    head = next(g for g in opt.param_groups if any(p is model.head.weight for p in g["params"]))
    assert head["lr"] == pytest.approx(1e-3)
    assert {g["weight_decay"] for g in opt.param_groups} == {0.0, 0.05}


@pytest.mark.parametrize(
    "cfg,match",
    [
        (dict(paramwise_cfg=dict(norm_decay_mul=0.0)), "did you mean 'norm_decay_mult'"),
        (dict(paramwise_cfg=dict(custom_keys={"head": dict(lr=2)})), r"custom_keys\['head'\]"),
        (dict(layer_decay=-1), "layer_decay: expected a positive float"),
        (dict(layer_decay=0.7, paramwise_cfg={}), "not both"),
    ],
)
def test_param_group_config_errors(cfg, match):
    problems = check_optimizer_config(dict(type="SGD", lr=0.1, weight_decay=1e-4, **cfg))
    assert any(re.search(match, p) for p in problems), problems
    with pytest.raises(ConfigError, match=match):
        build_optimizer(Net(), dict(type="SGD", lr=0.1, weight_decay=1e-4, **cfg))


def test_schedule_scales_each_group_from_its_own_lr(tmp_path):
    cfg = mlp_config(
        tmp_path,
        runner=dict(max_epochs=2),
        optimizer=dict(
            type="SGD",
            lr=0.01,
            momentum=0.9,
            weight_decay=1e-4,
            paramwise_cfg=dict(bias_lr_mult=2.0),
        ),
        lr_config=dict(_delete_=True, policy="CosineAnnealing", min_lr_ratio=0.1, by_epoch=False),
    )
    runner = run_config(cfg)
    assert sorted(g["initial_lr"] for g in runner.optimizer.param_groups) == [0.01, 0.02]
    (log,) = tmp_path.glob("*.log.json")
    recs = [r for r in map(json.loads, log.read_text().splitlines()) if r.get("mode") == "train"]
    for r in recs:
        it = r["step"] - 1
        # every group's lr, by name: weights and norm layers (0.01), biases (bias_lr_mult=2)
        assert {k for k in r if k.startswith("lr_")} == {"lr_default+norm", "lr_bias"}
        for base, v in zip((0.01, 0.02), (r["lr_default+norm"], r["lr_bias"]), strict=True):
            want = 0.1 * base + 0.5 * (base - 0.1 * base) * (cos(pi * it / 8) + 1)
            assert v == pytest.approx(want, rel=1e-12)
    assert all(torch.isfinite(p).all() for p in runner.unwrapped_model.parameters())
