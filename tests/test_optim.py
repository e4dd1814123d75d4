"""Tests for acchooks.optim: build_optimizer (torch.optim and timm) and its config check."""

from __future__ import annotations

import pytest
import timm.optim
import torch
from torch import nn

from acchooks.errors import ConfigError
from acchooks.optim import build_optimizer, check_optimizer_config, torch_optimizers


@pytest.fixture
def model():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


def test_torch_sgd_mmcv_semantics(model):
    opt = build_optimizer(model, dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4))
    assert type(opt) is torch.optim.SGD
    assert len(opt.param_groups) == 1  # weight decay on every parameter, as MMCV does
    group = opt.param_groups[0]
    assert group["lr"] == 0.1 and group["momentum"] == 0.9 and group["weight_decay"] == 1e-4
    assert len(group["params"]) == len(list(model.parameters()))


def test_torch_adamw(model):
    opt = build_optimizer(model, dict(type="AdamW", lr=1e-3, betas=(0.9, 0.95)))
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["betas"] == (0.9, 0.95)
    loss = model(torch.randn(3, 4)).sum()
    loss.backward()
    opt.step()


def test_timm_lamb(model):
    cfg = dict(type="lamb", lr=2e-3, weight_decay=0.05)
    opt = build_optimizer(model, cfg)
    assert type(opt) is timm.optim.Lamb
    assert cfg == dict(type="lamb", lr=2e-3, weight_decay=0.05)  # not modified
    # timm's default: no weight decay on biases / norm parameters.
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 0.05]
    assert all(g["lr"] == 2e-3 for g in opt.param_groups)


def test_timm_lookahead(model):
    opt = build_optimizer(model, dict(type="lookahead_adamw", lr=1e-3))
    assert type(opt).__name__ == "Lookahead"


def test_unknown_type_suggests(model):
    problems = check_optimizer_config(dict(type="SDG", lr=0.1))
    assert len(problems) == 1 and problems[0].startswith("optimizer.type: unknown optimizer")
    assert "did you mean 'SGD'" in problems[0]
    with pytest.raises(ConfigError, match="did you mean 'AdamW'"):
        build_optimizer(model, dict(type="AdamWW", lr=0.1))
    assert check_optimizer_config({})[0].startswith("optimizer.type: missing")
    assert check_optimizer_config("SGD")[0].startswith("optimizer: expected a dict")


def test_bad_kwarg_suggests(model):
    problems = check_optimizer_config(dict(type="SGD", lr=0.1, momentun=0.9))
    assert problems == [
        "optimizer: unexpected argument 'momentun' for SGD; did you mean 'momentum'?"
    ]
    problems = check_optimizer_config(dict(type="lamb", lr=0.1, wieght_decay=0.1))
    assert len(problems) == 1 and "did you mean 'weight_decay'" in problems[0]
    with pytest.raises(ConfigError, match="momentun"):
        build_optimizer(model, dict(type="SGD", lr=0.1, momentun=0.9))


def test_paramwise_cfg_checked(model):  # implemented: tests/test_param_groups.py
    with pytest.raises(ConfigError, match="norm_decay_mult: needs optimizer.weight_decay"):
        build_optimizer(model, dict(type="SGD", lr=0.1, paramwise_cfg=dict(norm_decay_mult=0.0)))


def test_valid_configs_have_no_problems():
    assert check_optimizer_config(dict(type="SGD", lr=0.1, momentum=0.9, nesterov=True)) == []
    assert check_optimizer_config(dict(type="Adam")) == []  # lr has a default
    assert check_optimizer_config(dict(type="lars", lr=0.1, trust_coeff=0.001)) == []
    assert {"SGD", "Adam", "AdamW", "RMSprop"} <= set(torch_optimizers())
