"""Two machines for real, on one host: two ``accelerate launch`` commands (machine ranks
0 and 1, one process each) meeting over loopback, training on WebDataset shards, against
one machine running the same two processes. They must read the same disjoint halves of
each epoch, evaluate to the same metrics, write each checkpoint once, and both resume
from it to the same weights. (``launch/slurm_multi_node.sh`` runs these launch lines.)"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from acchooks.testing import launch_command, same_weights
from acchooks.testing.shards import PLAIN, SIZES, write_wds_shards

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
ACCELERATE = str(Path(sys.executable).parent / "accelerate")
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{DATA}", "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.slow  # five 2-process launches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, shards: str) -> Path:
    train = dict(type="TimmDataset", name="wds/toy", root=shards, **PLAIN)
    cfg = tmp / "wds_cfg.py"
    cfg.write_text(
        (DATA / "tiny_cli.py").read_text()
        + f"data = dict(samples_per_gpu=6, workers_per_gpu=1, train={train!r},\n"
        "            val=dict(type='Shapes', num_samples=30, img_size=16, num_classes=4, seed=1))\n"
        "log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])\n"
        "custom_imports = dict(imports=['wds_probe'])\n"
        "custom_hooks = [dict(type='WdsIdProbe')]\n"
    )
    return cfg


def _machine(rank: int, port: int) -> list[str]:
    return [
        ACCELERATE,
        "launch",
        *("--config_file", str(ROOT / "launch" / "multi_node.yaml")),
        *("--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank)),
        *("--main_process_ip", "127.0.0.1", "--main_process_port", str(port)),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
    ]


def _train(launchers: list[list[str]], cfg: Path, work: Path, *extra: str) -> None:
    args = [str(ROOT / "train.py"), "--config", str(cfg), "--work-dir", str(work), *extra]
    procs = [
        subprocess.Popen(
            [*launcher, *args],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for launcher in launchers
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]


def _records(work: Path) -> list[dict]:
    (log,) = work.glob("*.log.json")
    return [json.loads(line) for line in log.read_text().splitlines()]


def _val_metrics(work: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k.startswith("accuracy")}
        for r in _records(work)
        if r.get("mode") == "val"
    ]


def _ids(work: Path) -> dict[tuple[int, int], list[int]]:
    """(epoch, rank) -> the sample ids that rank trained on, in order."""
    seen: dict[tuple[int, int], list[int]] = {}
    for rank in (0, 1):
        for line in (work / f"wds_ids_rank{rank}.jsonl").read_text().splitlines():
            epoch, _, ids = json.loads(line)
            seen.setdefault((epoch, rank), []).extend(ids)
    return seen


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("machines")
    cfg = _config(tmp, write_wds_shards(tmp / "shards"))
    one, two = tmp / "one_machine", tmp / "two_machines"
    _train([launch_command(2)], cfg, one)
    port = _free_port()
    _train([_machine(0, port), _machine(1, port)], cfg, two)
    return tmp, cfg, one, two


def test_two_machines_split_each_epoch_as_one_machine_does(runs):
    _, _, one, two = runs
    info = _records(two)[0]["env_info"]
    assert (info["distributed_type"], info["num_processes"]) == ("DistributedType.MULTI_CPU", 2)
    ids = _ids(two)
    for epoch in (0, 1):
        a, b = ids[(epoch, 0)], ids[(epoch, 1)]
        assert not set(a) & set(b) and sorted(a + b) == list(range(sum(SIZES)))
    assert ids == _ids(one)  # the same halves, in the same order
    assert ids[(0, 0)] != ids[(1, 0)]  # reshuffled each epoch


def test_two_machines_evaluate_and_save_as_one_machine(runs):
    _, _, one, two = runs
    assert _val_metrics(two) == _val_metrics(one) and len(_val_metrics(two)) == 2
    for ckpt in ("epoch_1", "epoch_2"):
        assert same_weights(one / ckpt, two / ckpt)
    # each checkpoint written once: one directory per save, nothing left aside
    names = sorted(p.name for p in two.iterdir() if p.is_dir())
    assert names == ["epoch_1", "epoch_2", "tf_logs"] or names == ["epoch_1", "epoch_2"]


def test_both_machines_resume_from_one_checkpoint(runs):
    tmp, cfg, one, two = runs
    resumed = tmp / "resumed"
    resumed.mkdir()
    shutil.copytree(two / "epoch_1", resumed / "epoch_1")
    port = _free_port()
    machines = [_machine(0, port), _machine(1, port)]
    _train(machines, cfg, resumed, "--resume-from", str(resumed / "epoch_1"))
    assert same_weights(resumed / "epoch_2", one / "epoch_2")
    assert _val_metrics(resumed) == _val_metrics(one)[1:]
