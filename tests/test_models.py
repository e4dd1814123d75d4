"""Tests for acchooks.models: TimmClassifier, build_model and the losses."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.loss import LabelSmoothingCrossEntropy as TimmLSCE
from timm.loss import SoftTargetCrossEntropy as TimmSoftCE
from torch import nn

from acchooks.errors import ConfigError
from acchooks.models import (
    CrossEntropyLoss,
    LabelSmoothingCrossEntropy,
    SoftTargetCrossEntropy,
    TimmClassifier,
    build_model,
    check_timm_model_config,
)
from acchooks.registry import LOSSES, MODELS


def test_timm_classifier_is_plain_timm():
    torch.manual_seed(0)
    model = TimmClassifier("test_resnet", num_classes=5)
    reference = timm.create_model("test_resnet", pretrained=False, num_classes=5)
    assert type(model) is type(reference)
    assert list(model.state_dict()) == list(reference.state_dict())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert MODELS.get("TimmClassifier") is TimmClassifier


def test_timm_classifier_passes_kwargs():
    model = MODELS.build(
        dict(
            type="TimmClassifier",
            model_name="test_resnet",
            num_classes=3,
            in_chans=1,
            drop_rate=0.2,
        )
    )
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert model.drop_rate == 0.2


def test_unknown_model_name_suggests():
    problems = check_timm_model_config(dict(model_name="resnet1"))
    assert len(problems) == 1 and problems[0].startswith("model.model_name: unknown timm model")
    assert "'resnet18'" in problems[0] or "'resnet10'" in problems[0]
    with pytest.raises(ConfigError, match="did you mean"):
        TimmClassifier("test_resnt")
    assert check_timm_model_config(dict(model_name="resnet50.a1_in1k")) == []
    assert check_timm_model_config({})[0].startswith("model.model_name: missing")
    assert (
        "num_classes" in check_timm_model_config(dict(model_name="test_resnet", num_classes=-1))[0]
    )


def test_build_model_with_default_and_custom_loss():
    model, criterion = build_model(
        dict(type="TimmClassifier", model_name="test_resnet", num_classes=4)
    )
    assert isinstance(model, nn.Module) and isinstance(criterion, CrossEntropyLoss)
    _, criterion = build_model(
        dict(
            type="TimmClassifier",
            model_name="test_resnet",
            loss=dict(type="LabelSmoothingCrossEntropy", smoothing=0.2),
        )
    )
    assert isinstance(criterion, TimmLSCE) and criterion.smoothing == 0.2
    _, criterion = build_model(dict(type="TimmClassifier", model_name="test_resnet", loss=None))
    assert criterion is None


def test_build_model_custom_registered_module():
    @MODELS.register_module(name="_TinyNetForTest", force=True)
    class TinyNet(nn.Module):
        def __init__(self, num_classes: int = 2, width: int = 4):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3)
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.head(self.conv(x).mean((2, 3)))

    cfg = dict(
        type="_TinyNetForTest",
        num_classes=3,
        width=8,
        loss=dict(type="CrossEntropyLoss", label_smoothing=0.1),
    )
    model, criterion = build_model(cfg)
    assert "loss" in cfg  # the caller's config is not modified
    assert isinstance(model, TinyNet) and model.conv.out_channels == 8
    out = model(torch.randn(2, 3, 8, 8))
    assert criterion(out, torch.tensor([0, 2])).ndim == 0


def test_build_model_errors():
    with pytest.raises(
        ConfigError,
        match=r"model\.type: unknown model type 'TimmClasifier'"
        r"; did you mean 'TimmClassifier'",
    ):
        build_model(dict(type="TimmClasifier", model_name="test_resnet"))
    with pytest.raises(ConfigError, match=r"model\.loss\.type: unknown loss type"):
        build_model(
            dict(type="TimmClassifier", model_name="test_resnet", loss=dict(type="CrossEntropy"))
        )
    with pytest.raises(
        ConfigError,
        match=r"model\.init_cfg\.checkpoint: checkpoint not found: "
        r"x\.safetensors",
    ):
        build_model(
            dict(
                type="TimmClassifier",
                model_name="test_resnet",
                init_cfg=dict(type="Pretrained", checkpoint="x.safetensors"),
            )
        )
    model, _ = build_model(dict(type="TimmClassifier", model_name="test_resnet", init_cfg=None))
    assert isinstance(model, nn.Module)


def test_cross_entropy_matches_torch():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    weight = [1.0, 2.0, 0.5, 1.0]
    loss = LOSSES.build(
        dict(type="CrossEntropyLoss", label_smoothing=0.1, weight=weight, loss_weight=2.0)
    )
    ref = F.cross_entropy(logits, target, weight=torch.tensor(weight), label_smoothing=0.1)
    assert torch.allclose(loss(logits, target), 2.0 * ref)
    assert "weight" in dict(loss.named_buffers())  # follows .to(device)
    soft = F.softmax(torch.randn(6, 4), dim=1)
    assert torch.allclose(CrossEntropyLoss()(logits, soft), F.cross_entropy(logits, soft))
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.5)


def test_timm_losses_registered_and_equal():
    assert LOSSES.get("LabelSmoothingCrossEntropy") is LabelSmoothingCrossEntropy is TimmLSCE
    assert LOSSES.get("SoftTargetCrossEntropy") is SoftTargetCrossEntropy is TimmSoftCE
    torch.manual_seed(0)
    logits, target = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    ls = LOSSES.build(dict(type="LabelSmoothingCrossEntropy", smoothing=0.1))
    assert torch.allclose(ls(logits, target), F.cross_entropy(logits, target, label_smoothing=0.1))
    soft = F.softmax(torch.randn(5, 3), dim=1)
    st = LOSSES.build(dict(type="SoftTargetCrossEntropy"))
    assert torch.allclose(st(logits, soft), F.cross_entropy(logits, soft))
    assert "BinaryCrossEntropy" in LOSSES
