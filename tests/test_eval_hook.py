"""Metrics (mmcls semantics), EvalHook's best-checkpoint rule, and 2-process evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from acchooks import HOOKS
from acchooks.errors import ConfigError
from acchooks.evaluation.metrics import evaluate
from acchooks.hooks.evaluation import infer_rule
from acchooks.testing import launch_command

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
BIN = Path(sys.executable).parent

SCORES = torch.tensor(
    [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.4, 0.5, 0.1], [0.2, 0.2, 0.6], [0.9, 0.05, 0.05]]
)
TARGETS = torch.tensor([0, 1, 0, 2, 1])


def test_precision_recall_f1_support_macro():
    got = evaluate(
        SCORES,
        TARGETS,
        ["accuracy", "precision", "recall", "f1_score", "support"],
        {"topk": (1, 2)},
    )
    # predictions 0, 1, 1, 2, 0: per class precision 1/2, 1/2, 1; recall 1/2, 1/2, 1
    assert got["accuracy_top-1"] == pytest.approx(60.0)
    assert got["accuracy_top-2"] == pytest.approx(100.0)
    assert got["precision"] == pytest.approx(200 / 3)
    assert got["recall"] == pytest.approx(200 / 3)
    assert got["f1_score"] == pytest.approx(200 / 3)
    assert got["support"] == 5.0


def test_average_mode_none_and_threshold_tuple():
    got = evaluate(
        SCORES,
        TARGETS,
        ["precision", "recall", "support"],
        {"average_mode": "none", "thrs": (0.0, 0.6)},
    )
    # at 0.6 the predictions scored .5 and .6 become "no class"
    assert [got[f"precision_class-{c}_thr_0.00"] for c in range(3)] == [50.0, 50.0, 100.0]
    assert [got[f"precision_class-{c}_thr_0.60"] for c in range(3)] == [50.0, 100.0, 0.0]
    assert [got[f"recall_class-{c}_thr_0.60"] for c in range(3)] == [50.0, 50.0, 0.0]
    assert [got[f"support_class-{c}"] for c in range(3)] == [2.0, 2.0, 1.0]
    acc = evaluate(SCORES, TARGETS, "accuracy", {"thrs": (0.0, 0.6)})
    assert acc == {"accuracy_top-1_thr_0.00": 60.0, "accuracy_top-1_thr_0.60": 40.0}


def test_bad_metric_options_are_config_errors():
    with pytest.raises(ConfigError, match="average_mode: expected one of 'macro', 'none'"):
        HOOKS.build(
            dict(type="EvalHook", metric="precision", metric_options={"average_mode": "micro"})
        )
    with pytest.raises(ConfigError, match="did you mean 'f1_score'"):
        HOOKS.build(dict(type="EvalHook", metric="f1_scor"))


@pytest.mark.parametrize(
    "key,rule",
    [
        ("accuracy_top-1", "greater"),
        ("precision", "greater"),
        ("recall", "greater"),
        ("f1_score", "greater"),
        ("accuracy_top-1_thr_0.50", "greater"),
        ("loss", "less"),
        ("val_loss", "less"),
        ("support", None),
    ],
)
def test_rule_inferred_as_mmcv(key, rule):
    assert infer_rule(key) == rule


METRICS_CFG = """
model = dict(type='TinyConvNet', num_classes=4)
data = dict(samples_per_gpu=4, workers_per_gpu=0,
            train=dict(type='Shapes', num_samples=16, img_size=32, num_classes=4, seed=0,
                       is_training=True),
            val=dict(type='Shapes', num_samples=21, img_size=32, num_classes=4, seed=1))
optimizer = dict(type='SGD', lr=0.0, momentum=0.9)  # weights stay at the seeded init
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='fixed')
runner = dict(type='EpochBasedRunner', max_epochs=1)
evaluation = dict(interval=1, metric=['accuracy', 'precision', 'recall', 'f1_score', 'support'],
                  metric_options=dict(topk=(1, 2)))
log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])
custom_imports = dict(imports=['acchooks_probes'], allow_failed_imports=False)
seed = 0
"""


def _val_metrics(tmp_path: Path, name: str, launcher: tuple[str, ...]) -> dict:
    cfg = tmp_path / "metrics.py"
    cfg.write_text(METRICS_CFG)
    work = tmp_path / name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(DATA)])}
    res = subprocess.run(
        [*launcher, str(ROOT / "train.py"), "--config", str(cfg), "--work-dir", str(work)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (log,) = work.glob("*.log.json")
    (val,) = [r for r in map(json.loads, log.read_text().splitlines()) if r.get("mode") == "val"]
    return {
        k: v
        for k, v in val.items()
        if k.split("_")[0] in ("accuracy", "precision", "recall", "f1", "support")
    }


def test_two_processes_give_the_metrics_of_one(tmp_path):
    one = _val_metrics(tmp_path, "one", (sys.executable,))
    two = _val_metrics(
        tmp_path,
        "two",
        launch_command(),
    )
    # 21 samples over 2 processes x 4 per batch: the sampler pads, the gather drops it
    assert one["support"] == two["support"] == 21.0
    assert set(one) == {
        "accuracy_top-1",
        "accuracy_top-2",
        "precision",
        "recall",
        "f1_score",
        "support",
    }
    assert one == two


def test_iteration_based_evaluation_is_plotted_at_its_train_iteration(tmp_path):
    """TensorBoard's x axis for an IterBasedRunner's evaluation: the train iteration it
    follows (2 and 4), the same step the JSON log and W&B/MLflow use."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from acchooks.testing import run_config, tiny_config

    cfg = tiny_config(
        tmp_path,
        runner=dict(_delete_=True, type="IterBasedRunner", max_iters=4),
        evaluation=dict(interval=2, by_epoch=False),
        log_config=dict(
            interval=1, hooks=[dict(type="TextLoggerHook"), dict(type="TensorboardLoggerHook")]
        ),
    )
    run_config(cfg)
    acc = EventAccumulator(str(tmp_path / "tf_logs"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("val/accuracy_top-1")] == [2, 4]
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
