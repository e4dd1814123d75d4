"""EMAHook through the public interface: tiny configs run in this process."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import load_file

from acchooks import HOOKS, Hook
from acchooks.config.schema import check_config
from acchooks.errors import ConfigError
from acchooks.registry import DATASETS
from acchooks.testing import run_config, tiny_config


@HOOKS.register_module(force=True)
class ParamRecorder(Hook):
    """Records the parameters at the start and after every train iteration; registered
    at LOWEST, so after the OptimizerHook's step."""

    def __init__(self):
        self.history: list[dict[str, torch.Tensor]] = []

    def _record(self, runner) -> None:
        self.history.append(
            {n: p.detach().clone() for n, p in runner.unwrapped_model.named_parameters()}
        )

    def before_run(self, runner) -> None:
        self._record(runner)

    def after_train_iter(self, runner) -> None:
        self._record(runner)


def expected_ema(history, momentum: float, interval: int, warm_up: int) -> dict[str, torch.Tensor]:
    """mmcv's formula, written out per parameter in float64."""
    ema = {k: v.double() for k, v in history[0].items()}
    per_update = 1 - (1 - momentum) ** interval
    for t, params in enumerate(history[1:]):
        if t % interval:
            continue
        m = min(per_update, (1 + t) / (warm_up + t)) if warm_up else per_update
        ema = {k: (1 - m) * ema[k] + m * params[k].double() for k in ema}
    return ema


def _run(tmp_path, ema: dict, **overrides):
    cfg = tiny_config(
        tmp_path,
        custom_hooks=[dict(type="EMAHook", **ema), dict(type="ParamRecorder", priority="LOWEST")],
        **overrides,
    )
    runner = run_config(cfg)
    return runner, runner.hooks.get("EMAHook"), runner.hooks.get("ParamRecorder")


def _records(work_dir) -> list[dict]:
    (log,) = work_dir.glob("*.log.json")
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("priority", ["HIGH", "NORMAL", "LOWEST"])
@pytest.mark.parametrize("interval", [1, 3])
def test_ema_equals_independent_computation(tmp_path, priority, interval):
    # the tutorial's priority='HIGH' runs before the optimizer step in after_train_iter:
    # the result must still be the average of the weights after each step
    runner, ema, rec = _run(
        tmp_path, dict(momentum=0.2, interval=interval, warm_up=3, priority=priority)
    )
    assert runner.step == 8 and len(rec.history) == 9
    want = expected_ema(rec.history, 0.2, interval, 3)
    got = ema.ema_state_dict()
    for k, v in want.items():
        assert got[k].dtype == torch.float32
        torch.testing.assert_close(got[k].double(), v, rtol=1e-5, atol=1e-6, msg=k)
    assert ema.updates == len(range(0, 8, interval))
    # buffers are not averaged: whenever the EMA is read they equal the model's
    for k, b in runner.unwrapped_model.named_buffers():
        assert torch.equal(got[k], b), k


@HOOKS.register_module(force=True)
class EmaBufferProbe(Hook):
    """After iteration 2 of each epoch (mid-epoch): the EMA's buffers and the model's."""

    def __init__(self):
        self.pairs: list[tuple[dict, dict]] = []

    def after_train_iter(self, runner) -> None:
        if runner.inner_iter == 1:
            ema = runner.hooks.get("EMAHook").ema_state_dict()
            model = {k: b.clone() for k, b in runner.unwrapped_model.named_buffers()}
            self.pairs.append(({k: ema[k].clone() for k in model}, model))


def test_ema_buffers_are_the_models_whenever_read_mid_epoch(tmp_path):
    # the buffers are copied when the EMA is read, not per update: a read in the middle of
    # an epoch (an iteration checkpoint, export) must see the BatchNorm statistics of now
    cfg = tiny_config(
        tmp_path,
        custom_hooks=[
            dict(type="EMAHook", momentum=0.2, interval=1),
            dict(type="EmaBufferProbe", priority="LOWEST"),
        ],
    )
    probe = run_config(cfg).hooks.get("EmaBufferProbe")
    assert len(probe.pairs) == 2
    for ema, model in probe.pairs:
        assert any(k.endswith("running_mean") for k in model)
        for k, b in model.items():
            assert torch.equal(ema[k], b), k


def test_decay_is_one_minus_momentum_and_update_is_after_step(tmp_path):
    _, ema, rec = _run(tmp_path, dict(decay=0.75, warm_up=0))
    want = expected_ema(rec.history, 0.25, 1, 0)
    for k, v in want.items():
        torch.testing.assert_close(ema.ema_state_dict()[k].double(), v, rtol=1e-5, atol=1e-6)
    # and the EMA is not the raw weights
    last = rec.history[-1]
    assert any(not torch.allclose(ema.ema_state_dict()[k], last[k]) for k in last)


def test_tutorial_config_works_as_written(tmp_path):
    cfg = tiny_config(
        tmp_path,
        custom_hooks=[dict(type="EMAHook", interval=100, priority="HIGH")],
        evaluation=dict(interval=1, metric="accuracy"),
    )
    runner = run_config(cfg)
    ema = runner.hooks.get("EMAHook")
    assert ema.updates == 1  # step index 0 only, of 8
    text = next(tmp_path.glob("*.log")).read_text()
    assert "(HIGH        ) EMAHook" in text
    assert text.count("Evaluating with EMA weights") == 2


def test_evaluation_uses_ema_weights_and_export_loads_into_timm(tmp_path):
    runner, ema, rec = _run(
        tmp_path,
        dict(momentum=0.5, warm_up=0),
        evaluation=dict(interval=1, metric="accuracy", save_best="auto"),
    )
    # the trained weights are back in the model after evaluation
    for n, p in runner.unwrapped_model.named_parameters():
        assert torch.equal(p, rec.history[-1][n]), n
    path = ema.export(tmp_path / "ema")
    assert path.endswith("ema/model.safetensors")
    val = DATASETS.build(dict(runner.cfg.data.val))
    vals = [r for r in _records(tmp_path) if r.get("mode") == "val"]
    assert _accuracy(path, val) == pytest.approx(vals[-1]["accuracy_top-1"])
    # the best checkpoint holds the weights that were evaluated: the EMA ones
    (best,) = tmp_path.glob("best_accuracy_top-1_epoch_*")
    assert _accuracy(str(best / "model.safetensors"), val) == pytest.approx(
        max(r["accuracy_top-1"] for r in vals)
    )
    assert "Evaluating with EMA weights" in next(tmp_path.glob("*.log")).read_text()


def _accuracy(weights: str, dataset) -> float:
    model = timm.create_model("test_resnet", num_classes=4, pretrained=False)
    model.load_state_dict(load_file(weights))  # a plain timm state dict
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    with torch.no_grad():
        pred = torch.cat([model(x).argmax(1) for x, _ in loader])
        target = torch.cat([y for _, y in loader])
    return (pred == target).float().mean().item() * 100


def test_state_round_trip_through_checkpoint(tmp_path):
    runner, ema, _ = _run(tmp_path / "a", dict(momentum=0.3, warm_up=2))
    path = runner.checkpointer.save("saved")
    again = run_config(
        tiny_config(
            tmp_path / "b",
            resume_from=path,
            custom_hooks=[dict(type="EMAHook", momentum=0.3, warm_up=2)],
        )
    )
    restored = again.hooks.get("EMAHook")
    assert again.epoch == 2 and restored.updates == ema.updates == 8
    assert restored.seen_step == ema.seen_step == 8
    for k, v in ema.ema_state_dict().items():
        assert torch.equal(restored.ema_state_dict()[k], v), k


def test_resume_continues_the_average(tmp_path):
    hooks = [dict(type="EMAHook", momentum=0.3, warm_up=2, priority="HIGH")]
    full = run_config(
        tiny_config(tmp_path / "full", custom_hooks=hooks, checkpoint_config=dict(interval=1))
    )
    resumed = run_config(
        tiny_config(
            tmp_path / "resumed", custom_hooks=hooks, resume_from=str(tmp_path / "full" / "epoch_1")
        )
    )
    a, b = full.hooks.get("EMAHook"), resumed.hooks.get("EMAHook")
    assert a.updates == b.updates == 8
    for k, v in a.ema_state_dict().items():
        torch.testing.assert_close(b.ema_state_dict()[k], v, rtol=0, atol=1e-6, msg=k)


def test_resume_from_argument_initialises_the_ema(tmp_path):
    first, ema, _ = _run(tmp_path / "a", dict(momentum=0.3))
    path = first.checkpointer.save("saved")
    cfg = tiny_config(
        tmp_path / "b",
        runner=dict(max_epochs=1),
        optimizer=dict(lr=0.0),  # weights stay put: the EMA too
        custom_hooks=[dict(type="EMAHook", momentum=0.3, resume_from=path)],
    )
    again = run_config(cfg).hooks.get("EMAHook")
    assert again.updates == ema.updates + 4


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    # (mixed precision and DDP: tests/test_misc_hooks.py::test_sync_buffers_two_processes)
    runner, ema, _ = _run(
        tmp_path, dict(momentum=0.1), accelerator=dict(gradient_accumulation_steps=2)
    )
    assert runner.step == 4 and ema.updates == 4  # optimizer steps, not micro-steps


def test_arguments_are_checked(tmp_path):
    cfg = tiny_config(tmp_path, custom_hooks=[dict(type="EMAHook", mometum=0.1)])
    problems, _ = check_config(cfg)
    assert any(
        "custom_hooks[0] (EMAHook): unexpected argument 'mometum'; did you mean 'momentum'?" in p
        for p in problems
    ), problems
    for bad in (dict(momentum=1.5), dict(momentum=0.1, decay=0.9), dict(interval=0)):
        with pytest.raises(ConfigError, match="EMAHook"):
            HOOKS.build(dict(type="EMAHook", **bad))
