"""OptimizerHook: accumulation (mmcv's GradientCumulativeOptimizerHook semantics through
Accelerate), optimizer-step counting, grad_norm, and the non-finite policy."""

from __future__ import annotations

import json

import pytest
import torch
from toy_mlp import mlp_config

from acchooks.errors import ConfigError
from acchooks.hooks.hook import Hook
from acchooks.hooks.priority import Priority
from acchooks.registry import HOOKS
from acchooks.testing import run_config


def train_records(work_dir):
    (log,) = work_dir.glob("*.log.json")
    return [r for r in map(json.loads, log.read_text().splitlines()) if r.get("mode") == "train"]


def weights(runner):
    return {k: v.detach().clone() for k, v in runner.unwrapped_model.state_dict().items()}


# 40 samples: 32 + 8 per epoch with a batch of 32, or 5 micro-batches of 8 where the
# 4-window leaves a last window of 1 micro-batch (averaged over itself, as in mmcv)
@pytest.mark.parametrize(
    "accumulate",
    [
        dict(optimizer_config=dict(type="GradientCumulativeOptimizerHook", cumulative_iters=4)),
        dict(accelerator=dict(gradient_accumulation_steps=4)),
    ],
    ids=["mmcv-cumulative_iters", "accelerate"],
)
def test_accumulation_equals_one_big_batch(tmp_path, accumulate):
    common = dict(
        num_samples=40,
        runner=dict(max_epochs=2),
        optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4),
        lr_config=dict(_delete_=True, policy="step", step=[1], gamma=0.5),
    )
    big = run_config(mlp_config(tmp_path / "big", data=dict(samples_per_gpu=32), **common))
    acc = run_config(
        mlp_config(tmp_path / "acc", data=dict(samples_per_gpu=8), **common, **accumulate)
    )
    assert big.step == acc.step == 4  # optimizer steps, not micro-batches
    assert acc.accelerator.gradient_accumulation_steps == 4 and acc.iter == 10
    for k, v in weights(big).items():
        torch.testing.assert_close(weights(acc)[k], v, rtol=1e-5, atol=1e-6)
    recs = train_records(tmp_path / "acc")
    assert [r["step"] for r in recs] == [0, 0, 0, 1, 2, 2, 2, 2, 3, 4]


# IterBasedRunner ending inside a window: mmcv steps on the last iteration (is_last_iter)
# and averages that window over its own size
ITER_ACC = dict(
    runner=dict(_delete_=True, type="IterBasedRunner", max_iters=7),
    optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4),
    optimizer_config=dict(type="GradientCumulativeOptimizerHook", cumulative_iters=4),
    data=dict(samples_per_gpu=8),
)


def test_iter_based_run_ending_inside_a_window_steps_on_its_last_iteration(tmp_path):
    # 40 samples in batches of 8: a pass is 5 micro-batches, windows [0-3], [4] (end of the
    # pass), then [5, 6] cut short by max_iters=7
    acc = run_config(mlp_config(tmp_path, num_samples=40, **ITER_ACC))
    assert acc.iter == 7 and acc.step == 3
    assert [r["step"] for r in train_records(tmp_path)] == [0, 0, 0, 1, 2, 2, 3]
    assert all(p.grad is None for p in acc.unwrapped_model.parameters())  # nothing left over


def test_last_incomplete_window_equals_one_batch_of_its_samples(tmp_path):
    # max_iters=2 with a window of 4: one step over 2 micro-batches of 8, averaged over 2,
    # must equal one step on a batch of 16 (the same samples: the order is a function of
    # (seed, epoch), not of the batch size)
    acc = run_config(
        mlp_config(
            tmp_path / "acc",
            num_samples=40,
            **{**ITER_ACC, "runner": dict(_delete_=True, type="IterBasedRunner", max_iters=2)},
        )
    )
    big = run_config(
        mlp_config(
            tmp_path / "big",
            num_samples=40,
            runner=dict(_delete_=True, type="IterBasedRunner", max_iters=1),
            optimizer=ITER_ACC["optimizer"],
            data=dict(samples_per_gpu=16),
        )
    )
    assert acc.step == big.step == 1
    for k, v in weights(big).items():
        torch.testing.assert_close(weights(acc)[k], v, rtol=1e-5, atol=1e-6)


def test_cumulative_iters_disagreeing_with_accelerator(tmp_path):
    cfg = mlp_config(
        tmp_path,
        accelerator=dict(gradient_accumulation_steps=2),
        optimizer_config=dict(type="GradientCumulativeOptimizerHook", cumulative_iters=4),
    )
    with pytest.raises(ConfigError, match="cumulative_iters=4 but the Accelerator accumulates 2"):
        run_config(cfg)


def test_grad_norm_logged_when_clipping(tmp_path):
    run_config(
        mlp_config(
            tmp_path, runner=dict(max_epochs=1), optimizer_config=dict(grad_clip=dict(max_norm=1.0))
        )
    )
    recs = train_records(tmp_path)
    assert all(r["grad_norm"] > 0 for r in recs)


def _poison_hook():
    from acchooks import Hook

    @HOOKS.register_module(force=True)
    class PoisonLoss(Hook):
        """Turn the loss into NaN at the given (0-based) iterations."""

        def __init__(self, iters=(1,)):
            self.iters = set(iters)

        def after_train_iter(self, runner):
            if runner.iter in self.iters:
                runner.outputs["loss"] = runner.outputs["loss"] * float("nan")

    return PoisonLoss


def test_nonfinite_raise_names_step_and_process(tmp_path):
    _poison_hook()
    cfg = mlp_config(
        tmp_path,
        optimizer_config=dict(nonfinite="raise"),
        custom_hooks=[dict(type="PoisonLoss", iters=[2], priority="HIGHEST")],
    )
    with pytest.raises(
        FloatingPointError,
        match=r"optimizer step 2 \(epoch 1, iter 3\) on "
        r"process\(es\) \[0\] of 1; loss terms",
    ):
        run_config(cfg)


def test_nonfinite_skip_counts_and_keeps_weights_finite(tmp_path):
    _poison_hook()
    cfg = mlp_config(
        tmp_path,
        runner=dict(max_epochs=2),
        optimizer_config=dict(nonfinite="skip"),
        custom_hooks=[dict(type="PoisonLoss", iters=[1, 5], priority="HIGHEST")],
    )
    runner = run_config(cfg)
    assert runner.step == 8 - 2 and runner.hooks.get("OptimizerHook").skipped_steps == 2
    assert all(torch.isfinite(v).all() for v in weights(runner).values())
    recs = train_records(tmp_path)
    assert [r["skipped_steps"] for r in recs] == [0, 1, 1, 1, 1, 2, 2, 2]
    assert [r["step"] for r in recs] == [1, 1, 2, 3, 4, 4, 5, 6]
    assert all("grad_norm" in r for i, r in enumerate(recs) if i not in (1, 5))


@pytest.mark.parametrize(
    "opt_cfg,match",
    [
        (dict(nonfinite="ignore"), "nonfinite: expected 'raise', 'skip' or None"),
        (dict(type="GradientCumulativeOptimizerHook", cumulative_iters=0), "positive int"),
    ],
)
def test_bad_optimizer_config(tmp_path, opt_cfg, match):
    with pytest.raises(ConfigError, match=match):
        run_config(mlp_config(tmp_path, optimizer_config=opt_cfg))


@HOOKS.register_module(force=True)
class BatchRecorderHook(Hook):
    """Records the initial weights, and each iteration's batch and learning rates."""

    priority = Priority.LOW  # before_train_iter: after the LrUpdaterHook has set the lr

    def __init__(self):
        self.batches, self.lrs, self.initial = [], [], None

    def before_run(self, runner):
        import copy

        self.initial = copy.deepcopy(runner.unwrapped_model)

    def before_train_iter(self, runner):
        self.batches.append([t.clone() for t in runner.data_batch[:2]])
        self.lrs.append([g["lr"] for g in runner.optimizer.param_groups])


@pytest.mark.parametrize("n", [1, 2])
def test_steps_equal_a_plain_torch_loop_over_the_same_batches(tmp_path, n):
    """The OptimizerHook's backward/step/zero_grad (which skips AcceleratedOptimizer's
    per-step checks where that is equivalent) give exactly the weights of a plain PyTorch
    loop over the same batches: loss / n, backward, step and zero_grad every n batches."""
    runner = run_config(
        mlp_config(
            tmp_path,
            num_samples=48,
            runner=dict(max_epochs=2),
            optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True),
            lr_config=dict(_delete_=True, policy="step", step=[1], gamma=0.5),
            accelerator=dict(gradient_accumulation_steps=n),
            custom_hooks=[dict(type="BatchRecorderHook")],
        )
    )
    rec = runner.hooks.get("BatchRecorderHook")
    assert len(rec.batches) == 12 and runner.step == 12 // n
    model = rec.initial
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True
    )
    for i, ((x, y), lrs) in enumerate(zip(rec.batches, rec.lrs, strict=True)):
        for g, lr in zip(opt.param_groups, lrs, strict=True):
            g["lr"] = lr
        (torch.nn.functional.cross_entropy(model(x), y) / n).backward()
        if (i + 1) % n == 0:
            opt.step()
            opt.zero_grad(set_to_none=True)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(weights(runner)[k], v, rtol=0, atol=0, msg=k)
    assert all(p.grad is None for p in runner.unwrapped_model.parameters())
