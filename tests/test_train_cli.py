"""The real command line: `python train.py`, `accelerate launch`, `torchrun`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

from acchooks.testing import launch_command

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
BIN = Path(sys.executable).parent


def run(args, cwd, launcher=(sys.executable,), timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*launcher, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def records(work_dir: Path) -> list[dict]:
    (log,) = work_dir.glob("*.log.json")
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("single")
    res = run(["--config", str(TINY), "--work-dir", str(work)], cwd=work)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return work, res


def test_json_log_fields(single_run):
    work, _ = single_run
    recs = records(work)
    assert recs[0]["env_info"]["distributed_type"] == "DistributedType.NO"
    train = [r for r in recs if r.get("mode") == "train"]
    val = [r for r in recs if r.get("mode") == "val"]
    # 64 samples / 16 per batch = 4 iterations per epoch, 2 epochs, interval 1
    assert [(r["epoch"], r["iter"], r["step"]) for r in train] == [
        (e, i, (e - 1) * 4 + i) for e in (1, 2) for i in (1, 2, 3, 4)
    ]
    for r in train:
        assert {
            "mode",
            "epoch",
            "iter",
            "step",
            "lr",
            "momentum",
            "loss",
            "time",
            "data_time",
        } <= set(r)
        assert r["momentum"] == 0.9 and isinstance(r["loss"], float)
    # step policy by epoch, step=[1], gamma=0.1: 0.01 in epoch 1, 0.001 in epoch 2
    assert [r["lr"] for r in train] == [0.01] * 4 + [pytest.approx(0.001, rel=1e-12)] * 4
    assert [r["epoch"] for r in val] == [1, 2]
    for r in val:
        assert 0.0 <= r["accuracy_top-1"] <= r["accuracy_top-2"] <= 100.0
        # 30 val samples: every percentage is a multiple of 100/30
        assert (r["accuracy_top-1"] * 30 / 100) == pytest.approx(round(r["accuracy_top-1"] * 0.3))


def test_text_log_tensorboard_config_and_checkpoint(single_run):
    work, res = single_run
    (log,) = work.glob("*.log")
    text = log.read_text()
    assert "Hooks will be executed in the following order:" in text
    assert "Epoch [2][4/4]\tlr: 1.000e-03, eta:" in text
    assert "Epoch(val) [2][2]\taccuracy_top-1:" in text
    assert list((work / "tf_logs").glob("events.out.tfevents.*"))
    assert (work / "tiny_cli.py").exists()  # merged config dumped
    weights = load_file(str(work / "epoch_2" / "model.safetensors"))
    model = timm.create_model("test_resnet", num_classes=4, pretrained=False)
    model.load_state_dict(weights)  # loads into the timm model as is
    assert (work / "latest").read_text().strip().endswith("epoch_2")


def test_tensorboard_scalars(single_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, _ = single_run
    acc = EventAccumulator(str(work / "tf_logs"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "learning_rate", "momentum", "val/accuracy_top-1"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 9))
    lrs = [e.value for e in acc.Scalars("learning_rate")]
    assert lrs[:4] == [pytest.approx(0.01)] * 4 and lrs[4:] == [pytest.approx(0.001)] * 4


def _last_step(work):
    return [r for r in records(work) if r.get("mode") == "train"][-1]["step"]


@pytest.mark.parametrize(
    "launcher",
    [
        launch_command(),
        ("torchrun", "--nproc_per_node", "2"),
    ],
    ids=["accelerate", "torchrun"],
)
def test_two_processes_take_the_steps_of_one(single_run, tmp_path, launcher):
    launcher = (str(BIN / launcher[0]), *launcher[1:])
    res = run(
        [
            "--config",
            str(TINY),
            "--work-dir",
            str(tmp_path),
            "--cfg-options",
            "data.samples_per_gpu=8",
        ],
        cwd=tmp_path,
        launcher=launcher,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    recs = records(tmp_path)  # exactly one log (main process only)
    assert recs[0]["env_info"]["distributed_type"] == "DistributedType.MULTI_CPU"
    assert recs[0]["global_batch"] == 16
    single_work, _ = single_run
    assert _last_step(tmp_path) == _last_step(single_work) == 8
    train = [r for r in recs if r.get("mode") == "train"]
    assert [r["iter"] for r in train] == [1, 2, 3, 4] * 2


BAD = """
_base_ = '{tiny}'
evalution = dict(interval=1)
checkpoint_cfg = dict(interval=1)
custom_imports = dict(imports=['my_hooks'], allow_failed_imports=False)
custom_hooks = [dict(type='MyHook', a=1, b=2), dict(type='MyHook', a=1, b=2, intervl=3),
                dict(type='EMAHok'), dict(type='MyHook', a=1, b=2, priority='NORMALL')]
runner = dict(max_epochs='3')
optimizer = dict(momentun=0.9)
"""

MY_HOOKS = """
from acchooks import HOOKS, Hook

@HOOKS.register_module()
class MyHook(Hook):
    def __init__(self, a, b, interval: int = 1):
        self.a, self.b = a, b

    def before_run(self, runner):
        print('MyHook.before_run', self.a, self.b)
"""


def test_config_errors_reported_together_before_anything_is_made(tmp_path):
    """Key errors come first, together (they need no import); once they are fixed, every
    hook, priority, runner and optimizer error together; nothing is created either time."""
    (tmp_path / "my_hooks.py").write_text(MY_HOOKS)
    cfg = tmp_path / "bad.py"
    cfg.write_text(BAD.format(tiny=TINY))
    work = tmp_path / "work"
    res = run(["--config", str(cfg), "--work-dir", str(work)], cwd=tmp_path)
    assert res.returncode == 2
    assert "2 problem(s)" in res.stderr, res.stderr
    for expected in [
        "evalution: unknown top-level key; did you mean 'evaluation'?",
        "checkpoint_cfg: unknown top-level key; did you mean 'checkpoint_config'?",
    ]:
        assert expected in res.stderr, res.stderr
    cfg.write_text(
        BAD.format(tiny=TINY)
        .replace("evalution", "evaluation")
        .replace("checkpoint_cfg", "checkpoint_config")
    )
    res = run(["--config", str(cfg), "--work-dir", str(work)], cwd=tmp_path)
    assert res.returncode == 2
    err = res.stderr
    for expected in [
        "custom_hooks[1] (MyHook): unexpected argument 'intervl'; did you mean 'interval'?",
        "custom_hooks[2].type: unknown hook type 'EMAHok'",
        "custom_hooks[3].priority: unknown priority 'NORMALL'; did you mean 'NORMAL'?",
        "runner.max_epochs (EpochBasedRunner): expected a positive int, got '3'",
        "optimizer: unexpected argument 'momentun' for SGD; did you mean 'momentum'?",
    ]:
        assert expected in err, err
    assert not work.exists()  # nothing was created
    assert "Traceback" not in err


def test_custom_imports_hook_runs(tmp_path):
    (tmp_path / "my_hooks.py").write_text(MY_HOOKS)
    cfg = tmp_path / "good.py"
    cfg.write_text(
        f"_base_ = '{TINY}'\nrunner = dict(max_epochs=1)\n"
        "custom_imports = dict(imports=['my_hooks'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='MyHook', a=1, b=2, priority='HIGH')]\n"
    )
    res = run(["--config", str(cfg), "--work-dir", str(tmp_path / "w")], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "MyHook.before_run 1 2" in res.stdout
    assert "(HIGH        ) MyHook" in res.stdout


def test_bad_config_under_accelerate_launch_exits_on_every_process(tmp_path):
    cfg = tmp_path / "bad.py"
    cfg.write_text(f"_base_ = '{TINY}'\nevalution = dict(interval=1)\n")
    res = run(
        ["--config", str(cfg), "--work-dir", str(tmp_path / "w")],
        cwd=tmp_path,
        launcher=launch_command(),
        timeout=120,
    )
    assert res.returncode != 0
    assert res.stderr.count("did you mean 'evaluation'") == 1  # printed once, by rank 0


def test_missing_data_folder(tmp_path):
    cfg = tmp_path / "folder.py"
    cfg.write_text(
        f"_base_ = '{TINY}'\n"
        "data = dict(train=dict(_delete_=True, type='ImageFolder', root='nowhere'))\n"
    )
    res = run(["--config", str(cfg)], cwd=tmp_path)
    assert res.returncode == 2
    assert "data.train.root: data folder not found: nowhere" in res.stderr
    assert not (tmp_path / "work_dirs").exists()


def test_iter_based_runner(tmp_path):
    res = run(
        [
            "--config",
            str(TINY),
            "--work-dir",
            str(tmp_path),
            "--cfg-options",
            "runner={'_delete_': True, 'type': 'IterBasedRunner', 'max_iters': 6}",
            "checkpoint_config.by_epoch=False",
            "checkpoint_config.interval=3",
            "evaluation.by_epoch=False",
            "evaluation.interval=3",
            "lr_config.by_epoch=False",
            "lr_config.step=[4]",
            "log_config.hooks.0.by_epoch=False",
        ],
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    recs = records(tmp_path)
    train = [r for r in recs if r.get("mode") == "train"]
    assert [r["iter"] for r in train] == [1, 2, 3, 4, 5, 6]
    # iteration-based step policy: lr drops after 4 optimizer steps
    assert [r["lr"] for r in train] == [0.01] * 4 + [pytest.approx(0.001)] * 2
    assert [r["iter"] for r in recs if r.get("mode") == "val"] == [3, 6]
    assert (tmp_path / "iter_3").is_dir() and (tmp_path / "iter_6").is_dir()
    assert "Iter [6/6]" in res.stdout


@pytest.mark.slow
def test_quickstart_learns(tmp_path):
    """The README's quickstart, shortened to 4 epochs (~50 s: slow, so the default run stays
    well under 10 minutes; .ci/run still runs it)."""
    res = run(
        [
            "--config",
            str(ROOT / "configs" / "quickstart.py"),
            "--work-dir",
            str(tmp_path),
            "--cfg-options",
            "runner.max_epochs=4",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    best = max(r["accuracy_top-1"] for r in records(tmp_path) if "accuracy_top-1" in r)
    assert best >= 90.0
    assert list(tmp_path.glob("best_accuracy_top-1_epoch_*"))
    assert torch.isfinite(torch.tensor(best))


@pytest.mark.slow
def test_bf16_from_config_and_launch_flag_wins(tmp_path):
    res = run(
        [
            "--config",
            str(TINY),
            "--work-dir",
            str(tmp_path / "cfg"),
            "--cfg-options",
            "runner.max_epochs=1",
            "accelerator.mixed_precision=bf16",
        ],
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert records(tmp_path / "cfg")[0]["env_info"]["mixed_precision"] == "bf16"
    res = run(
        [
            "--config",
            str(TINY),
            "--work-dir",
            str(tmp_path / "flag"),
            "--cfg-options",
            "runner.max_epochs=1",
        ],
        cwd=tmp_path,
        launcher=(
            str(BIN / "accelerate"),
            "launch",
            "--num_processes",
            "1",
            "--num_machines",
            "1",
            "--mixed_precision",
            "bf16",
            "--dynamo_backend",
            "no",
        ),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    recs = records(tmp_path / "flag")
    assert recs[0]["env_info"]["mixed_precision"] == "bf16"
    assert all(r["loss"] == r["loss"] for r in recs if r.get("mode") == "train")  # finite


@pytest.mark.parametrize(
    "launcher",
    [
        (sys.executable,),
        launch_command(),
    ],
    ids=["1proc", "2proc"],
)
def test_model_with_its_own_train_step(tmp_path, launcher):
    cfg = tmp_path / "own.py"
    cfg.write_text(
        f"_base_ = '{TINY}'\n"
        "model = dict(_delete_=True, type='SelfStepping', num_classes=4)\n"
        "custom_imports = dict(imports=['custom_models'])\n"
        "workflow = [('train', 1), ('val', 1)]\n"
    )
    env_path = f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'data'}"
    res = subprocess.run(
        [
            *launcher,
            str(ROOT / "train.py"),
            "--config",
            str(cfg),
            "--work-dir",
            str(tmp_path / "w"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": env_path},
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    recs = records(tmp_path / "w")
    train = [r for r in recs if r.get("mode") == "train"]
    assert {"loss", "loss_cls", "loss_reg"} <= set(train[0])
    assert train[0]["loss"] == pytest.approx(train[0]["loss_cls"] + train[0]["loss_reg"])
    # 64 samples, 16 per process: 4 (1 process) or 2 (2 processes) steps per epoch
    assert train[-1]["step"] == (8 if len(launcher) == 1 else 4)
    val = [r for r in recs if r.get("mode") == "val" and "loss" in r]
    assert len(val) == 2


def test_plain_registered_module(tmp_path):
    cfg = tmp_path / "plain.py"
    cfg.write_text(
        f"_base_ = '{TINY}'\n"
        "model = dict(_delete_=True, type='TinyNet', num_classes=4, width=4)\n"
        "custom_imports = dict(imports=['custom_models'])\n"
    )
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--config",
            str(cfg),
            "--work-dir",
            str(tmp_path / "w"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'data'}"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert any("accuracy_top-1" in r for r in records(tmp_path / "w"))
