"""DataLoader worker processes end with the run (and with ``acchooks test``), also when
the run fails: persistent workers left alive keep the interpreter from exiting for a
minute after pytest's summary."""

import multiprocessing
import sys
from pathlib import Path

import pytest

from acchooks import HOOKS, Hook
from acchooks.testing import run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
WORKERS = dict(
    data=dict(workers_per_gpu=2),
    runner=dict(max_epochs=1),
    workflow=[("train", 1), ("val", 1)],
    evaluation=dict(interval=1, metric="accuracy"),
)


@HOOKS.register_module()
class FailAtSecondIterForWorkersTest(Hook):  # test-only: a run that fails mid-epoch
    def after_train_iter(self, runner):
        if runner.iter == 1:
            raise RuntimeError("boom at iteration 2")


def workers_alive() -> list:
    return [p for p in multiprocessing.active_children() if p.is_alive()]


def test_run_leaves_no_worker_processes(tmp_path):
    runner = run_config(tiny_config(tmp_path, **WORKERS))
    assert runner.epoch == 1
    assert workers_alive() == []  # train, val phase and EvalHook loaders all stopped


def test_failed_run_leaves_no_worker_processes(tmp_path):
    cfg = tiny_config(
        tmp_path, **WORKERS, custom_hooks=[dict(type="FailAtSecondIterForWorkersTest")]
    )
    with pytest.raises(RuntimeError, match="boom"):
        run_config(cfg)
    assert workers_alive() == []


def test_acchooks_test_leaves_no_worker_processes(tmp_path, monkeypatch, capsys):
    from acchooks.cli.main import main

    run_config(tiny_config(tmp_path, runner=dict(max_epochs=1), checkpoint_config=dict(interval=1)))
    monkeypatch.setattr(sys, "argv", ["acchooks"])
    rc = main(
        [
            "test",
            "--config",
            str(ROOT / "tests" / "data" / "tiny_cli.py"),
            "--checkpoint",
            str(tmp_path / "epoch_1"),
            "--work-dir",
            str(tmp_path),
            "--split",
            "val",
            "--cfg-options",
            "data.workers_per_gpu=2",
            "data.val.num_samples=20",
        ]
    )
    assert rc == 0, capsys.readouterr()
    assert workers_alive() == []
