"""FSDP (1 and 2) on CPU processes over gloo: full-state checkpoints and exact resume.

Accelerate 1.15 enables FSDP only for GPU-like devices; acchooks.runner.fsdp switches it on
for CPU processes the way Accelerate does on GPUs, so these run on any machine:

- test_full_state_roundtrip[1|2]: ``torchrun --nproc_per_node 2 tests/test_fsdp.py V``
  runs :func:`worker`: a small model (two param groups, Adam) trained sharded and
  unsharded side by side; the gathered optimizer state must equal the unsharded
  optimizer's ``state_dict()``, and loading it into a fresh sharded model must continue
  exactly.
- test_train_save_resume[fsdp|fsdp2]: ``accelerate launch --config_file launch/<yaml>
  --num_processes 2 train.py``: 2 epochs uninterrupted vs 1 epoch + ``--resume auto`` to 2;
  the same final weights and optimizer state, ``model.safetensors`` loads into timm, and the
  optimizer state is the unsharded one (ids in the unsharded parameter order).

All are ``slow`` (each process start costs ~15 s on a 2-core machine). The GPU version is
tests/gpu/check_fsdp.sh.
"""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from acchooks.runner.fsdp import (
    _fqn,
    full_optimizer_state,
    full_shapes,
    full_tensors,
    load_full_state,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = ROOT / "tests" / "data" / "tiny_cli.py"


# --- the torchrun worker ---------------------------------------------------------------
def make():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 32),
        nn.ReLU(),
        nn.Sequential(nn.Linear(32, 32), nn.BatchNorm1d(32)),
        nn.ReLU(),
        nn.Linear(32, 3),
    )


def optim(model):
    """Two groups, in the unsharded model's parameter order (as when the optimizer is built
    before Accelerate wraps the model; FSDP1 lists a nested unit's parameters last)."""
    params = {_fqn(n): p for n, p in model.named_parameters()}
    names = [n for n, _ in make().named_parameters()]
    decay = [params[n] for n in names if n.endswith("weight")]
    rest = [params[n] for n in names if not n.endswith("weight")]
    return torch.optim.Adam([{"params": decay, "weight_decay": 0.1}, {"params": rest}], lr=0.01)


def shard(model, version):
    if version == 2:
        from torch.distributed.fsdp import fully_shard

        fully_shard(model[2])
        return fully_shard(model)
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    model[2] = FSDP(model[2], device_id=torch.device("cpu"), use_orig_params=True)
    return FSDP(model, device_id=torch.device("cpu"), use_orig_params=True)


def step(model, opt, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()


def worker(version):
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(1)
    data = [(torch.randn(8 * world, 6), torch.randint(0, 3, (8 * world,))) for _ in range(4)]
    local = [(x.chunk(world)[rank], y.chunk(world)[rank]) for x, y in data]
    # BatchNorm statistics depend on the batch: the unsharded reference runs in eval mode
    plain = make().eval()
    popt = optim(plain)
    sharded = shard(make(), version).eval()
    sopt = optim(sharded)
    for (x, y), (lx, ly) in zip(data[:2], local[:2], strict=True):
        step(plain, popt, x, y)
        step(sharded, sopt, lx, ly)

    with full_shapes(sharded) as shapes:
        assert {k: tuple(v.shape) for k, v in shapes.items()} == {
            k: tuple(v.shape) for k, v in plain.state_dict().items()
        }, shapes.keys()
        for g, pg in zip(sopt.param_groups, popt.param_groups, strict=True):
            assert [tuple(p.shape) for p in g["params"]] == [tuple(p.shape) for p in pg["params"]]

    full = full_optimizer_state(sharded, sopt)
    ref = popt.state_dict()
    if rank == 0:
        assert full["param_groups"] == ref["param_groups"], (
            full["param_groups"],
            ref["param_groups"],
        )
        assert full["state"].keys() == ref["state"].keys()
        for pid, st in ref["state"].items():
            for k, v in st.items():
                torch.testing.assert_close(
                    full["state"][pid][k],
                    v,
                    rtol=1e-5,
                    atol=1e-6,
                    msg=lambda m, pid=pid, k=k: f"state[{pid}].{k}: {m}",
                )
    else:
        assert full is None

    # resume: every process passes the full states (as read from a checkpoint)
    full = [full if rank == 0 else None]
    dist.broadcast_object_list(full, src=0)
    model_state = {k: v.detach().clone() for k, v in plain.state_dict().items()}
    resumed = shard(make(), version).eval()
    ropt = optim(resumed)
    load_full_state(resumed, ropt, model_state, copy.deepcopy(full[0]))
    for (x, y), (lx, ly) in zip(data[2:], local[2:], strict=True):
        step(plain, popt, x, y)
        step(resumed, ropt, lx, ly)
    after = full_optimizer_state(resumed, ropt)
    if version == 2:
        got = full_tensors(dict(resumed.state_dict()))
    else:
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.state_dict_type(
            resumed,
            StateDictType.FULL_STATE_DICT,
            FullStateDictConfig(offload_to_cpu=True, rank0_only=False),
        ):
            got = resumed.state_dict()
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    if rank == 0:
        for pid, st in popt.state_dict()["state"].items():
            for k, v in st.items():
                torch.testing.assert_close(after["state"][pid][k], v, rtol=1e-5, atol=1e-6)
        print("OK", flush=True)
    dist.destroy_process_group()


def _env():
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


@pytest.mark.slow
@pytest.mark.parametrize("version", [1, 2])
def test_full_state_roundtrip(version):
    out = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", __file__, str(version)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "OK" in out.stdout, (out.stdout + out.stderr)[-4000:]


# --- train.py under accelerate launch --------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(yaml, work, epochs, resume=False):
    cmd = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(ROOT / "launch" / yaml),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(ROOT / "train.py"),
        "--config",
        str(TINY),
        "--work-dir",
        str(work),
        "--cfg-options",
        f"runner.max_epochs={epochs}",
    ]
    if resume:
        cmd += ["--resume", "auto"]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out.stdout + out.stderr


def _load(ckpt: Path, name: str):
    from safetensors.torch import load_file

    return load_file(str(ckpt / f"{name}.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("yaml", ["fsdp.yaml", "fsdp2.yaml"])
def test_train_save_resume(yaml, tmp_path):
    import timm

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _launch(yaml, straight, 2)
    _launch(yaml, resumed, 1)
    log = _launch(yaml, resumed, 2, resume=True)
    assert "resumed from" in log and "epoch_1" in log, log[-3000:]
    for work in (straight, resumed):
        for line in sorted(work.glob("*.log.json")):
            env = json.loads(line.read_text().splitlines()[0])["env_info"]
            assert env["distributed_type"] == "DistributedType.FSDP", env
            assert env["num_processes"] == 2
    model = timm.create_model("test_resnet", num_classes=4)
    params = [tuple(p.shape) for p in model.parameters()]
    for name in ("model", "optimizer"):
        a, b = _load(straight / "epoch_2", name), _load(resumed / "epoch_2", name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(
                a[k], b[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k, name=name: f"{name} {k}: {m}"
            )
    for ckpt in (resumed / "epoch_1", resumed / "epoch_2"):
        model.load_state_dict(_load(ckpt, "model"))  # strict: every key, full shapes
        opt = _load(ckpt, "optimizer")
        # SGD momentum, numbered as the unsharded optimizer numbers its parameters
        assert [
            tuple(opt[f"state.{i}.momentum_buffer"].shape) for i in range(len(params))
        ] == params
        groups = json.loads((ckpt / "optimizer.json").read_text())["param_groups"]
        assert [p for g in groups for p in g["params"]] == list(range(len(params)))
    # the run trained: epoch 2 differs from epoch 1
    w1, w2 = _load(resumed / "epoch_1", "model"), _load(resumed / "epoch_2", "model")
    assert any(not torch.equal(w1[k], w2[k]) for k in w1 if w1[k].is_floating_point())


@pytest.mark.slow
def test_ema_hook_under_fsdp_is_a_clear_error(tmp_path):
    """The EMA would average each process's shards: refused before the first iteration."""
    cmd = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(ROOT / "launch" / "fsdp2.yaml"),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(ROOT / "train.py"),
        "--config",
        str(TINY),
        "--work-dir",
        str(tmp_path),
        "--cfg-options",
        "custom_hooks=[{'type': 'EMAHook'}]",
    ]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400)
    assert out.returncode != 0
    assert "EMAHook): not supported under FSDP yet" in out.stdout + out.stderr
    assert not list(tmp_path.glob("epoch_*"))


if __name__ == "__main__":
    worker(int(sys.argv[1]))
