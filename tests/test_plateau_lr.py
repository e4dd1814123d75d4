"""``lr_config=dict(policy='ReduceLROnPlateau', ...)``: the LR is lowered exactly when the
monitored metric stalls (patience, cooldown, min_lr, warmup on top), a resumed run's LR
sequence equals the straight run's, and bad arguments are config errors.

The metrics come from ``ScriptedMetrics`` (tests/data/scripted_metrics.py): a scripted
value per epoch, handed to every hook as EvalHook does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from acchooks.errors import ConfigError
from acchooks.testing import run_config, tiny_config, train_losses

DATA = Path(__file__).resolve().parent / "data"
if str(DATA) not in sys.path:  # scripted_metrics for custom_imports
    sys.path.insert(0, str(DATA))

# 50 is the best until 60 (epoch 4); 60 is never beaten after
VALUES = [50, 50, 50, 60, 60, 60, 60, 60]
LR = 0.01


def _config(work: Path, lr_config: dict, **extra):
    return tiny_config(
        work,
        custom_imports=dict(imports=["scripted_metrics"]),
        data=dict(train=dict(num_samples=16)),  # 2 iterations (optimizer steps) per epoch
        optimizer=dict(lr=LR),
        lr_config={
            "_delete_": True,
            "policy": "ReduceLROnPlateau",
            "monitor": "accuracy_top-1",
            "rule": "greater",
            "factor": 0.5,
            "patience": 1,
            "min_delta": 0.0,
            **lr_config,
        },
        runner=dict(max_epochs=len(VALUES)),
        # the default CheckpointHook: written after the stage, so with the evaluation
        checkpoint_config=dict(interval=1),
        custom_hooks=[dict(type="ScriptedMetrics", values=VALUES, priority="LOW")],
        progress_config=dict(enable=False),
        **extra,
    )


def _lrs(work: Path) -> list[float]:
    """The lr of every train iteration, in order."""
    return [lr for _, _, lr in train_losses(work)]


def _per_epoch(factors: list[float]) -> list[float]:
    return [LR * f for f in factors for _ in range(2)]


@pytest.mark.parametrize(
    "cooldown,factors",
    [
        # bad evaluations after epochs 2 and 3: more than patience=1 -> halved from epoch 4;
        # 60 improves at 4, bad at 5 and 6 -> halved again from epoch 7
        (0, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]),
        # cooldown=2 after the first reduction: 4 (improves) and 5 count nothing; bad at 6, 7
        (2, [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]),
    ],
)
def test_lr_lowered_exactly_when_the_metric_stalls(tmp_path, cooldown, factors):
    run_config(_config(tmp_path, dict(cooldown=cooldown)))
    assert _lrs(tmp_path) == pytest.approx(_per_epoch(factors), rel=1e-12)


def test_min_lr_warmup_and_an_exact_resume(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # warmup over the first 3 steps; the second reduction stops at min_lr
    args = dict(min_lr=0.004, warmup="linear", warmup_iters=3, warmup_ratio=0.1)
    run_config(_config(straight, args))
    lrs = _lrs(straight)
    warm = [LR * (1 - (1 - i / 3) * 0.9) for i in range(3)]
    assert lrs[:3] == pytest.approx(warm, rel=1e-12)
    assert lrs[3:] == pytest.approx(_per_epoch([1, 1, 1, 0.5, 0.5, 0.5, 0.4, 0.4])[3:])
    # resumed from epoch 5 (one bad evaluation counted, one reduction done)
    run_config(_config(resumed, args, resume_from=str(straight / "epoch_5")))
    assert _lrs(resumed) == lrs[10:]
    assert train_losses(resumed) == train_losses(straight)[10:]


def test_bad_arguments_are_config_errors(tmp_path):
    from acchooks.config.schema import check_config

    cfg = _config(tmp_path, dict(factor=1.5, paitence=3))
    problems = " | ".join(check_config(cfg)[0])
    assert "did you mean 'patience'" in problems
    cfg = _config(tmp_path, dict(factor=1.5, threshold=0.1))  # and min_delta=0.0
    problems = " | ".join(check_config(cfg)[0])
    assert "factor: expected a float in (0, 1), got 1.5" in problems
    assert "give min_delta or threshold/threshold_rule, not both" in problems
    cfg = _config(tmp_path, {})
    cfg.lr_config.monitor = "acc_top-1"
    with pytest.raises(ConfigError, match="'acc_top-1' is not among the computed metrics"):
        run_config(cfg)
