"""LR scaling by the global batch: ``auto_scale_lr`` (mmengine, linear) and timm's
``optimizer.lr_base`` / ``lr_base_size`` / ``lr_base_scale``, through the optimizer
builder, train.py (the log line, resume) and ``acchooks vis-lr --num-processes``."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from acchooks.cli.main import main as acchooks_main
from acchooks.cli.train import main as train_main
from acchooks.config import Config
from acchooks.optim import build_optimizer
from acchooks.optim.lr_scaling import lr_scaling
from acchooks.testing import launch_command

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


def built(opt: dict, per_process: int, processes: int, accumulation: int = 1, **top) -> list:
    """The lr of every param group, built as a run on ``processes`` processes builds it."""
    cfg = Config(dict(optimizer=opt, **top))
    scaling = lr_scaling(cfg, per_process, processes, accumulation)
    return [g["lr"] for g in build_optimizer(Net(), cfg.optimizer, scaling).param_groups]


# ------------------------------------------------------------------ the formulas
def test_timm_lr_base_linear_with_accumulation_and_two_processes():
    # timm train.py: lr = lr_base * batch_size * world_size * grad_accum_steps / lr_base_size
    lrs = built(dict(type="SGD", lr_base=0.1, lr_base_size=256, momentum=0.9), 32, 2, 4)
    assert lrs == [0.1 * (32 * 2 * 4 / 256)]


def test_timm_lr_base_sqrt_is_the_default_for_adaptive_optimizers():
    for name in ("AdamW", "lamb", "adamw", "Adagrad"):
        (lr,) = set(built(dict(type=name, lr_base=1e-3, lr_base_size=512), 64, 2))
        assert lr == 1e-3 * (64 * 2 / 512) ** 0.5, name
    (lr,) = built(dict(type="SGD", lr_base=0.1), 64, 2)  # lr_base_size 256, linear
    assert lr == 0.1 * (128 / 256)
    (lr,) = set(
        built(dict(type="AdamW", lr_base=5e-4, lr_base_size=512, lr_base_scale="linear"), 64, 16)
    )
    assert lr == 5e-4 * 1024 / 512  # DeiT: lr 5e-4 x batch / 512


def test_auto_scale_lr_is_linear_and_scales_every_param_group():
    opt = dict(type="SGD", lr=0.1, weight_decay=1e-4, paramwise_cfg=dict(bias_lr_mult=2.0))
    unscaled = built(opt, 32, 1)
    scaled = built(opt, 32, 2, auto_scale_lr=dict(base_batch_size=256, enable=True))
    factor = 32 * 2 / 256
    assert len(scaled) == 2 and sorted(unscaled) == [0.1, 0.2]
    assert sorted(scaled) == [0.1 * factor, 0.1 * factor * 2.0]
    # off unless enabled (mmengine's default): the configured lr as is
    assert built(opt, 32, 2, auto_scale_lr=dict(base_batch_size=256)) == unscaled


def test_timm_layer_decay_groups_are_scaled_alike():
    from timm import create_model

    model = create_model("test_vit", pretrained=False, num_classes=3)
    opt = dict(type="adamw", lr_base=1e-3, lr_base_size=256, weight_decay=0.05, layer_decay=0.5)
    cfg = Config(dict(optimizer=opt))
    plain = build_optimizer(model, cfg.optimizer).param_groups
    scaled = build_optimizer(model, cfg.optimizer, lr_scaling(cfg, 16, 4, 1)).param_groups
    factor = (64 / 256) ** 0.5
    assert len(plain) > 2
    for p, s in zip(plain, scaled, strict=True):
        assert s["lr"] == pytest.approx(p["lr"] * factor, rel=1e-12)


# ------------------------------------------------------------------ a run
def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"_base_ = {str(TINY)!r}\n" + body)
    return path


def records(work: Path) -> list[dict]:
    (log,) = work.glob("*.log.json")
    return [json.loads(line) for line in log.read_text().splitlines()[1:]]


def text_log(work: Path) -> str:
    return "".join(p.read_text() for p in sorted(work.glob("*.log")))


SCALED = """
auto_scale_lr = dict(base_batch_size=128, enable=True)
optimizer = dict(type="SGD", lr=0.4, momentum=0.9)
optimizer_config = dict(cumulative_iters=2)
lr_config = dict(_delete_=True, policy="CosineAnnealing", min_lr=0.04, by_epoch=False,
                 warmup="linear", warmup_iters=2, warmup_ratio=0.25)
checkpoint_config = dict(interval=1)
evaluation = None
"""


@pytest.fixture(scope="module")
def scaled_work(tmp_path_factory) -> Path:
    """The work dir of SCALED trained for 2 epochs."""
    tmp_path = tmp_path_factory.mktemp("scaled")
    cfg = write(tmp_path, "scaled.py", SCALED)
    work = tmp_path / "work"
    assert train_main(["--config", str(cfg), "--work-dir", str(work)]) == 0
    return work


def test_a_run_logs_and_uses_the_scaled_lr(scaled_work):
    work = scaled_work
    log = text_log(work)
    # global batch 16 x 1 x 2 = 32: x0.25
    line = (
        "LR scaling (auto_scale_lr, linear): global batch 32 = 16 per process x 1 processes "
        "x 2 accumulation; base lr 0.4 for batch 128 -> lr 0.1 (x0.25)"
    )
    assert line in log
    assert log.count("LR scaling (") == 1
    lrs = [r["lr"] for r in records(work) if r.get("mode") == "train"]
    # the same curve as unscaled x 0.25: min_lr scaled too; warmup is a ratio
    # (under cumulative_iters the schedule counts iterations, as mmcv: 2 epochs x 4)
    n = 8
    cos = [0.01 + 0.5 * (0.1 - 0.01) * (1 + math.cos(math.pi * i / n)) for i in range(n)]
    expected = [c * (1 - (1 - i / 2) * (1 - 0.25)) if i < 2 else c for i, c in enumerate(cos)]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_resume_keeps_the_checkpoints_scaled_lr(scaled_work, tmp_path):
    work = scaled_work
    full = [r["lr"] for r in records(work) if r.get("mode") == "train"]
    cfg = write(tmp_path, "scaled.py", SCALED)
    same = tmp_path / "same"  # the same global batch: the same lrs, no warning
    argv = ["--config", str(cfg), "--work-dir", str(same), "--resume-from", str(work / "epoch_1")]
    assert train_main(argv) == 0
    assert [r["lr"] for r in records(same) if r.get("mode") == "train"] == full[4:]
    assert "the checkpoint's learning rates are kept" not in text_log(same)
    other = tmp_path / "other"  # another global batch (as another process count): said, kept
    argv[3] = str(other)
    assert train_main([*argv, "--cfg-options", "data.samples_per_gpu=32"]) == 0
    log = text_log(other)
    assert "global batch 64 = 32 per process" in log and "-> lr 0.2 (x0.5)" in log
    assert (
        "resume: the checkpoint's learning rates are kept: scaled x0.25 when its run started "
        "(lr 0.1); this run's global batch 64 would scale it x0.5 (lr 0.2)"
    ) in log
    lrs = [r["lr"] for r in records(other) if r.get("mode") == "train"]
    assert lrs and max(lrs) <= 0.1 * 0.75 and min(lrs) >= 0.01  # the x0.25 curve, min_lr too


# ------------------------------------------------------------------ vis-lr
def test_vis_lr_shows_the_scaled_lr_for_a_process_count(tmp_path, capsys):
    cfg = write(
        tmp_path,
        "vis.py",
        "auto_scale_lr = dict(base_batch_size=256, enable=True)\n"
        "lr_config = dict(_delete_=True, policy='CosineAnnealing', min_lr=1e-3, "
        "by_epoch=False, warmup='linear', warmup_iters=3, warmup_ratio=0.1)\n",
    )
    runs = {}
    for n in (1, 8):
        js = tmp_path / f"lr{n}.json"
        argv = ["vis-lr", str(cfg), "--dataset-size", "1024", "--out", str(tmp_path / "lr.png")]
        assert acchooks_main([*argv, "--num-processes", str(n), "--json", str(js)]) == 0
        runs[n] = json.loads(js.read_text())
    out = capsys.readouterr().out
    assert (
        "note: LR scaling (auto_scale_lr, linear): global batch 128 = 16 per process x 8 "
        "processes x 1 accumulation; base lr 0.01 for batch 256 -> lr 0.005 (x0.5)"
    ) in out
    assert runs[8]["lr_scaling"]["lr"] == 0.01 * 128 / 256
    assert runs[1]["lr_scaling"]["factor"] == 16 / 256
    # the same shape over the run's progress: each 8-process step is 8 one-process steps
    one, eight = runs[1]["lr"], runs[8]["lr"]
    assert len(one) == 8 * len(eight) == 128
    for s in (0, 5, 10, 15):
        progress = s / 16
        ref = 1e-3 + 0.5 * (0.01 - 1e-3) * (1 + math.cos(math.pi * progress))
        if s < 3:
            ref *= 1 - (1 - s / 3) * 0.9
        assert eight[s] == pytest.approx(ref * 0.5, rel=1e-9)


def test_vis_lr_with_split_batches_counts_the_loader_batch_once(tmp_path):
    cfg = write(
        tmp_path,
        "split.py",
        "auto_scale_lr = dict(base_batch_size=256, enable=True)\n"
        "accelerator = dict(split_batches=True)\n",
    )
    js = tmp_path / "lr.json"
    argv = ["vis-lr", str(cfg), "--dataset-size", "1024", "--out", str(tmp_path / "lr.png")]
    assert acchooks_main([*argv, "--num-processes", "8", "--json", str(js)]) == 0
    scaling = json.loads(js.read_text())["lr_scaling"]
    assert scaling["global_batch"] == 16  # samples_per_gpu 16 split over 8 processes
    assert scaling["factor"] == 16 / 256


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "auto_scale_lr = dict(base_batch_size=0, enable=True)",
            "auto_scale_lr.base_batch_size: expected a positive int, got 0",
        ),
        (
            "auto_scale_lr = dict(base_batch=256, enable=True)",
            "auto_scale_lr: unexpected key 'base_batch'; did you mean 'base_batch_size'?",
        ),
        (
            "auto_scale_lr = dict(enable=True)",
            "auto_scale_lr.base_batch_size: missing (required with enable=True)",
        ),
        (
            "optimizer = dict(type='SGD', lr=None, lr_base=0.1, lr_base_scale='sqr')",
            "optimizer.lr_base_scale: expected one of 'linear', 'sqrt', '' or None, got 'sqr'; "
            "did you mean 'sqrt'?",
        ),
        (
            "optimizer = dict(type='SGD', lr_base=0.1)",
            "optimizer: give lr (used as is) or lr_base (scaled by the global batch",
        ),
        (
            "optimizer = dict(type='SGD', lr=0.1, lr_base_size=512)",
            "optimizer.lr_base_size: needs optimizer.lr_base",
        ),
        (
            "optimizer = dict(type='SGD', lr=None, lr_base=0.1)\n"
            "auto_scale_lr = dict(base_batch_size=256, enable=True)",
            "auto_scale_lr: enabled, and optimizer.lr_base scales the lr too",
        ),
        (
            "optimizer = dict(type='lamb', lr=None, lr_base=0.1, lr_base_size=-2)",
            "optimizer.lr_base_size: expected a positive int, got -2",
        ),
    ],
)
def test_bad_scaling_input_is_a_config_error(tmp_path, capsys, body, message):
    cfg = write(tmp_path, "bad.py", body + "\n")
    work = tmp_path / "work"
    assert train_main(["--config", str(cfg), "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not work.exists()


def test_the_optimizer_builder_refuses_bad_lr_base_too():
    from acchooks.errors import ConfigError

    with pytest.raises(ConfigError, match="lr_base_scale"):
        build_optimizer(Net(), dict(type="SGD", lr_base=0.1, lr_base_scale="log"))
    assert torch.is_tensor(next(Net().parameters()))


# ------------------------------------------------------------------ 2 processes
@pytest.mark.slow
@pytest.mark.parametrize("split", [False, True], ids=["per-process", "split_batches"])
def test_two_processes_scale_by_the_global_batch(tmp_path, split):
    cfg = write(
        tmp_path,
        "two.py",
        "optimizer = dict(type='SGD', lr=None, lr_base=0.4, lr_base_size=64, momentum=0.9)\n"
        "data = dict(samples_per_gpu=8)\nrunner = dict(max_epochs=1)\nevaluation = None\n"
        f"accelerator = dict(split_batches={split})\n",
    )
    # split_batches: each loader batch of 8 is divided over the 2 processes
    per, total = (4, 8) if split else (8, 16)
    work = tmp_path / "work"
    cmd = launch_command()
    res = subprocess.run(
        [*cmd, str(ROOT / "train.py"), "--config", str(cfg), "--work-dir", str(work)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = text_log(work)
    assert (
        f"LR scaling (optimizer.lr_base, linear): global batch {total} = {per} per process x 2 "
        f"processes x 1 accumulation; base lr 0.4 for batch 64 -> lr {0.4 * total / 64:g} "
        f"(x{total / 64:g})"
    ) in log
    assert log.count("LR scaling (") == 1  # the main process only
    assert f"global batch {total} = {per} per process x 2 processes" in log.split("LR scaling")[1]
    assert {r["lr"] for r in records(work) if r.get("mode") == "train"} == {0.4 * total / 64}
