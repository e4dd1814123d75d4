"""EarlyStoppingHook: patience/min_delta semantics, a clean stop (last checkpoint, log
line), the same stop epoch straight or resumed, and a clear error for a bad monitor key.

The metrics come from ``ScriptedMetrics`` (tests/data/scripted_metrics.py), a stand-in for
EvalHook that hands every hook a scripted value per epoch through the same protocol
method; one test runs the real EvalHook."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from acchooks.errors import ConfigError
from acchooks.testing import launch_command, run_config, tiny_config

DATA = Path(__file__).resolve().parent / "data"
if str(DATA) not in sys.path:  # scripted_metrics, acchooks_probes for custom_imports
    sys.path.insert(0, str(DATA))

# best 50, 60; 60 again is no improvement; 61 is one by 1.0: more than min_delta=0.5, not
# more than min_delta=1.0
VALUES = [50, 60, 60, 61, 55, 58, 70, 80]


def _config(work: Path, min_delta: float, **extra):
    return tiny_config(
        work,
        custom_imports=dict(imports=["scripted_metrics"]),
        data=dict(train=dict(num_samples=16)),  # 2 iterations per epoch
        runner=dict(max_epochs=len(VALUES)),
        # the default CheckpointHook (NORMAL, before the evaluation at LOW): its checkpoints
        # are written after the stage, so they hold the evaluation of their epoch
        checkpoint_config=dict(interval=5),
        custom_hooks=[
            dict(type="ScriptedMetrics", values=VALUES, priority="LOW"),
            dict(
                type="EarlyStoppingHook", monitor="accuracy_top-1", patience=2, min_delta=min_delta
            ),
        ],
        progress_config=dict(enable=False),
        **extra,
    )


def _trained_epochs(work: Path) -> list[int]:
    (log,) = work.glob("*.log.json")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return sorted({r["epoch"] for r in records if r.get("mode") == "train"})


def _log_text(work: Path) -> str:
    return "".join(p.read_text() for p in work.glob("*.log"))


def _hook_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "state.json").read_text())["hooks"]["EarlyStoppingHook"]


@pytest.mark.parametrize("min_delta,stop", [(0.5, 6), (1.0, 4)])
def test_stops_after_patience_evaluations_without_improvement(tmp_path, min_delta, stop):
    runner = run_config(_config(tmp_path, min_delta))
    assert runner.epoch == stop and runner.stopping
    assert _trained_epochs(tmp_path) == list(range(1, stop + 1))
    # the last epoch is checkpointed (save_last), none after it
    saved = sorted(p.name for p in tmp_path.glob("epoch_*"))
    assert saved == sorted({"epoch_5", f"epoch_{stop}"} if stop > 5 else {f"epoch_{stop}"})
    assert _hook_state(tmp_path / f"epoch_{stop}")["stopped_at"] == stop
    lines = [ln for ln in _log_text(tmp_path).splitlines() if "Early stopping" in ln]
    assert len(lines) == 1 and f"after epoch {stop}:" in lines[0]
    assert f"min_delta={min_delta} in 2 evaluations" in lines[0]


def test_resumed_run_stops_at_the_same_epoch(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_config(_config(straight, 0.5))
    state = _hook_state(straight / "epoch_5")  # 55 after the best 61: one bad evaluation
    assert state["wait_count"] == 1 and state["best"] == 61.0 and state["stopped_at"] is None
    runner = run_config(_config(resumed, 0.5, resume_from=str(straight / "epoch_5")))
    assert runner.epoch == 6 and _trained_epochs(resumed) == [6]
    assert _hook_state(resumed / "epoch_6") == _hook_state(straight / "epoch_6")
    # resuming the stopped run trains nothing more
    again = tmp_path / "again"
    runner = run_config(_config(again, 0.5, resume_from=str(straight / "epoch_6")))
    assert runner.epoch == 6 and not list(again.glob("epoch_*"))
    assert "had stopped early after epoch 6" in _log_text(again)


def test_stopping_threshold_and_nonfinite(tmp_path):
    cfg = _config(tmp_path / "thr", 0.0)
    cfg.custom_hooks[1]["stopping_threshold"] = 59.0
    assert run_config(cfg).epoch == 2  # 60 > 59
    cfg = _config(tmp_path / "nan", 0.0)
    cfg.custom_hooks[0]["values"] = [50, float("nan"), 70, 80, 90, 91, 92, 93]
    assert run_config(cfg).epoch == 2


def test_real_evaluation_feeds_it_and_a_bad_monitor_key_is_named(tmp_path):
    # lr=0 and no BatchNorm: the accuracy never changes
    frozen = dict(
        custom_imports=dict(imports=["acchooks_probes"]),
        model=dict(_delete_=True, type="TinyConvNet"),
        optimizer=dict(lr=0.0, momentum=0.0),
        evaluation=dict(interval=2, metric="accuracy", metric_options={"topk": (1, 2)}),
        progress_config=dict(enable=False),
    )
    hook = dict(type="EarlyStoppingHook", monitor="accuracy_top-1", patience=1)
    # iteration-based, the default order (CheckpointHook NORMAL before EvalHook LOW):
    # evaluated at iterations 2 and 4, stopped after 4, whose checkpoint save_last writes
    # after the stop, holding it
    runner = run_config(
        tiny_config(
            tmp_path / "ok",
            custom_hooks=[hook],
            runner=dict(_delete_=True, type="IterBasedRunner", max_iters=20),
            checkpoint_config=dict(interval=10, by_epoch=False),
            **frozen,
        )
    )
    assert runner.iter == 4 and sorted(p.name for p in (tmp_path / "ok").glob("iter_*")) == [
        "iter_4"
    ]
    assert _hook_state(tmp_path / "ok" / "iter_4")["stopped_at"] == 4
    frozen["evaluation"]["interval"] = 1
    bad = dict(hook, monitor="accuracy_top1")
    with pytest.raises(ConfigError) as e:
        run_config(tiny_config(tmp_path / "bad", custom_hooks=[bad], **frozen))
    msg = str(e.value)
    assert "EarlyStoppingHook.monitor: 'accuracy_top1' is not among the computed" in msg
    assert "did you mean 'accuracy_top-1'?" in msg and "accuracy_top-2" in msg


def test_bad_arguments_are_config_errors(tmp_path):
    from acchooks.config.schema import check_config

    def problems(**hook):
        cfg = tiny_config(tmp_path, custom_hooks=[dict(type="EarlyStoppingHook", **hook)])
        return " | ".join(check_config(cfg)[0])

    assert "EarlyStoppingHook.patience: expected a positive int, got 0" in problems(
        monitor="accuracy_top-1", patience=0
    )
    assert "unexpected argument 'patiance'; did you mean 'patience'?" in problems(
        monitor="accuracy_top-1", patiance=3
    )
    assert "cannot infer whether 'support' is better greater or less; set rule=" in problems(
        monitor="support"
    )
    assert problems(monitor="support", rule="greater") == ""


TWO_PROCESS_CFG = """
model = dict(type="TinyConvNet", num_classes=4)
data = dict(
    samples_per_gpu=4,
    workers_per_gpu=0,
    train=dict(type="Shapes", num_samples=16, img_size=32, num_classes=4, seed=0, is_training=True),
    val=dict(type="Shapes", num_samples=8, img_size=32, num_classes=4, seed=1),
)
optimizer = dict(type="SGD", lr=0.01, momentum=0.9)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy="ReduceLROnPlateau", monitor="accuracy_top-1", factor=0.5, patience=0)
runner = dict(type="EpochBasedRunner", max_epochs=8)
checkpoint_config = dict(interval=2)
log_config = dict(interval=1, hooks=[dict(type="TextLoggerHook")])
progress_config = dict(enable=False)
custom_imports = dict(imports=["acchooks_probes", "scripted_metrics"])
custom_hooks = [
    dict(type="ScriptedMetrics", values=[50, 60, 55, 58, 59, 70, 80, 90], priority="LOW"),
    dict(type="EarlyStoppingHook", monitor="accuracy_top-1", patience=3),
]
seed = 0
"""


@pytest.mark.slow
def test_two_processes_stop_together(tmp_path):
    """Both processes stop after epoch 5 (3 evaluations without beating 60), save the last
    checkpoint together and exit 0; the plateau policy halved the LR after epochs 3, 4, 5."""
    import os
    import subprocess

    root = DATA.parents[1]
    cfg = tmp_path / "two.py"
    cfg.write_text(TWO_PROCESS_CFG)
    work = tmp_path / "work"
    launcher = launch_command()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(DATA)])}
    res = subprocess.run(
        [*launcher, str(root / "train.py"), "--config", str(cfg), "--work-dir", str(work)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert _trained_epochs(work) == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in work.glob("epoch_*")) == ["epoch_2", "epoch_4", "epoch_5"]
    assert _hook_state(work / "epoch_5")["stopped_at"] == 5
    (log,) = work.glob("*.log.json")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    lrs = {r["epoch"]: r["lr"] for r in records if r.get("mode") == "train"}
    assert lrs == pytest.approx({1: 0.01, 2: 0.01, 3: 0.01, 4: 0.005, 5: 0.0025})
