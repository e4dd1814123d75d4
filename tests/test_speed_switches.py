"""The speed and memory switches, each by training timm's tiny test_resnet (issue 19):
channels_last, grad_checkpointing, torch.compile, sync_bn, and TimmClassifier keyword
arguments checked against the timm model's class before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

from acchooks import HOOKS, Hook
from acchooks.cli.train import main as train_main
from acchooks.config.schema import check_config
from acchooks.testing import run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TINY_CLI = ROOT / "tests" / "data" / "tiny_cli.py"
EVAL = dict(evaluation=dict(interval=1, metric="accuracy"))


@HOOKS.register_module(force=True)
class ModelProbe(Hook):
    """Records, for every call of the model's stem conv, whether the model was training
    and whether its input was channels_last; counts the runs of ``layer1``'s first block."""

    def __init__(self):
        self.inputs: list[tuple[bool, bool]] = []
        self.layer1_runs = 0

    def before_run(self, runner) -> None:
        model = runner.unwrapped_model

        def stem(module, args):
            cl = args[0].is_contiguous(memory_format=torch.channels_last)
            self.inputs.append((module.training, cl))

        def layer1(*_):
            self.layer1_runs += 1

        model.conv1.register_forward_pre_hook(stem)
        # a pre-hook: checkpoint_seq runs blocks, and a recompute stops early, before the
        # post-forward hooks
        model.layer1[0].register_forward_pre_hook(layer1)


def _run(work_dir, **overrides):
    cfg = tiny_config(work_dir, custom_hooks=[dict(type="ModelProbe")], **EVAL, **overrides)
    runner = run_config(cfg)
    return runner, runner.hooks.get("ModelProbe")


def _weights(runner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in runner.unwrapped_model.state_dict().items()}


def _close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


@pytest.fixture(scope="module")
def eager(tmp_path_factory):
    """The plain run every switch is compared with: 2 epochs, val by EvalHook."""
    runner, probe = _run(tmp_path_factory.mktemp("eager"), checkpoint_config=dict(interval=1))
    return runner, probe, _weights(runner)


# ---------------------------------------------------------------- channels_last
def test_channels_last_model_and_every_input(tmp_path, eager):
    runner, probe = _run(tmp_path, channels_last=True)
    convs = [p for n, p in runner.unwrapped_model.named_parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    # train steps and EvalHook's predictions: every input reached the model channels_last
    assert {t for t, _ in probe.inputs} == {True, False}
    assert all(cl for _, cl in probe.inputs)
    plain_runner, plain_probe, plain = eager
    assert not any(cl for _, cl in plain_probe.inputs)  # the probe tells the difference
    _close(_weights(runner), plain, atol=1e-5)  # the same training, another memory layout


# ---------------------------------------------------------------- grad checkpointing
def test_grad_checkpointing_recomputes_in_backward_and_trains_the_same(tmp_path, eager):
    runner, probe = _run(tmp_path, model=dict(grad_checkpointing=True))
    _, plain_probe, plain = eager
    # 8 train iterations and 3 val batches per epoch; checkpointed layer1 runs again in
    # each backward
    assert plain_probe.layer1_runs == 2 * (4 + 3)
    assert probe.layer1_runs == 2 * (4 * 2 + 3)
    # the same parameters; BatchNorm running statistics inside checkpointed blocks are
    # updated again by the recompute (torch.utils.checkpoint, as in timm's train.py)
    params = [n for n, _ in runner.unwrapped_model.named_parameters()]
    _close(*({n: w[n] for n in params} for w in (_weights(runner), plain)), atol=1e-6)


def test_grad_checkpointing_unsupported_model_is_a_config_error(tmp_path):
    cfg = tiny_config(tmp_path, model=dict(model_name="inception_v3", grad_checkpointing=True))
    (problem,) = check_config(cfg)[0]
    assert problem.startswith("model.grad_checkpointing: timm model 'inception_v3'")
    assert "not supported" in problem


# ---------------------------------------------------------------- TimmClassifier kwargs
def test_misspelled_timm_kwarg_exits_2_before_any_work(tmp_path, capsys):
    work = tmp_path / "work"
    args = ["--config", str(TINY_CLI), "--work-dir", str(work)]
    rc = train_main([*args, "--cfg-options", "model.drop_path_rat=0.1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "model.drop_path_rat: timm model 'test_resnet' (ResNet) takes no argument" in err
    assert "did you mean 'drop_path_rate'?" in err
    assert not work.exists() or not any(work.rglob("*.safetensors"))
    # the right name passes the check (and reaches the model)
    cfg = tiny_config(tmp_path, model=dict(drop_path_rate=0.1, drop_rate=0.2))
    assert check_config(cfg)[0] == []


# ---------------------------------------------------------------- torch.compile
def test_compile_config_errors_list_what_is_valid(tmp_path):
    def problems(compile_cfg):
        return check_config(tiny_config(tmp_path, compile=compile_cfg))[0]

    (p,) = problems(dict(backend="inductr"))
    assert "did you mean 'inductor'?" in p and "aot_eager" in p and "eager" in p
    (p,) = problems(dict(mode="max-autotun"))
    assert "did you mean 'max-autotune'?" in p and "'reduce-overhead'" in p
    (p,) = problems(dict(backend="eager", mode="default"))
    assert p.startswith("compile.mode: 'default' is a mode of the 'inductor' backend")
    (p,) = problems(dict(bakend="eager"))
    assert "unexpected key 'bakend'; did you mean 'backend'?" in p
    assert problems(True) == [] and problems(dict(backend="aot_eager", fullgraph=True)) == []


def _keys_like_timm(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    state = load_file(str(ckpt_dir / "model.safetensors"))
    timm_model = timm.create_model("test_resnet", num_classes=4)
    assert set(state) == set(timm_model.state_dict())  # no _orig_mod. prefix
    timm_model.load_state_dict(state)
    return state


@pytest.mark.slow  # ~10 s: dynamo's first compile in a process
def test_compiled_run_checkpoints_load_into_eager_and_back(tmp_path, eager):
    compiled = dict(compile=dict(backend="eager"), checkpoint_config=dict(interval=1))
    runner, _ = _run(tmp_path / "c", **compiled)
    assert type(runner.model).__name__ == "OptimizedModule"
    state = _keys_like_timm(tmp_path / "c" / "epoch_2")
    eager_runner, _, eager_weights = eager
    _close(_weights(runner), eager_weights, atol=1e-6)
    # a compiled checkpoint resumes an eager run, an eager one a compiled run
    eager_dir = Path(eager_runner.work_dir)
    resumed, _ = _run(tmp_path / "e", resume_from=str(tmp_path / "c" / "epoch_1"))
    _close(_weights(resumed), eager_weights, atol=1e-6)
    again, _ = _run(tmp_path / "c2", resume_from=str(eager_dir / "epoch_1"), **compiled)
    _close(_weights(again), {k: v for k, v in state.items()}, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("backend,atol", [("aot_eager", 1e-6), ("inductor", 1e-4)])
def test_compiled_resume_and_ema_match_uninterrupted(tmp_path, eager, backend, atol):
    """AOTAutograd (``aot_eager``) and inductor (C++ kernels, so numerics may differ in
    the last bits): a compiled run resumed from epoch 1 ends where the uninterrupted
    compiled run ends, EMA included, and near the eager run."""
    ema = [dict(type="EMAHook", momentum=0.1, interval=1)]
    cfg = dict(compile=dict(backend=backend), checkpoint_config=dict(interval=1))

    def run(work, **extra):
        r = run_config(tiny_config(work, custom_hooks=ema, **cfg, **extra))
        return _weights(r), r.hooks.get("EMAHook").state_dict()

    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # no cached graphs (nor recompile limit) from earlier tests
    counters.clear()
    straight, straight_ema = run(tmp_path / "a")
    assert counters["aot_autograd"]["ok"] >= 1  # the backend really compiled the model
    if backend == "inductor":
        assert sum(counters["inductor"].values()) > 0
    resumed, resumed_ema = run(tmp_path / "b", resume_from=str(tmp_path / "a" / "epoch_1"))
    _close(resumed, straight, atol=atol)
    ema_a = {k: v for k, v in straight_ema.items() if isinstance(v, torch.Tensor)}
    ema_b = {k: v for k, v in resumed_ema.items() if isinstance(v, torch.Tensor)}
    _close(ema_b, ema_a, atol=atol)
    _close(straight, eager[2], atol=max(atol, 1e-4))
    _keys_like_timm(tmp_path / "a" / "epoch_2")


# ---------------------------------------------------------------- sync_bn
def test_sync_bn_on_one_process_is_skipped_with_a_log_line(tmp_path):
    runner, _ = _run(tmp_path, sync_bn=True, runner=dict(max_epochs=1))
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in runner.unwrapped_model.modules())
    (log,) = Path(tmp_path).glob("*.log")
    assert "sync_bn: skipped, one process" in log.read_text()


@pytest.mark.slow
def test_sync_bn_on_two_cpu_processes_is_a_clear_error(tmp_path):
    """torch's SyncBatchNorm syncs only GPU inputs: 2 CPU processes (gloo) are refused,
    exit 2, before the model is built."""
    accelerate = Path(sys.executable).parent / "accelerate"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            str(accelerate),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            str(ROOT / "train.py"),
            "--config",
            str(TINY_CLI),
            "--work-dir",
            str(tmp_path),
            "--cfg-options",
            "sync_bn=True",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert "sync_bn: torch.nn.SyncBatchNorm synchronises only cuda/xpu/hpu inputs" in out
    assert "2 cpu processes" in out
    assert not any(tmp_path.rglob("*.safetensors"))
