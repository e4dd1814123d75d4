"""launch/: accelerate config files, SLURM scripts, and a real one-node Slurm (slow tests).

The SLURM scripts' logic is tested with stand-ins for srun/scontrol/accelerate on PATH;
the slow tests submit the real script to a real Slurm (launch/ci_slurm_setup.sh)."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
BIN = Path(sys.executable).parent
ACCELERATE = str(BIN / "accelerate")
YAMLS = [
    "cpu",
    "single_gpu_bf16",
    "single_gpu_fp16",
    "multi_gpu",
    "multi_node",
    "fsdp",
    "fsdp2",
    "deepspeed_zero2",
]


def env(**extra):
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'data'}", **extra}


def train(launcher, work, *opts, timeout=300):
    return subprocess.Popen(
        [
            *launcher,
            str(ROOT / "train.py"),
            "--config",
            str(TINY),
            "--work-dir",
            str(work),
            "--cfg-options",
            "runner.max_epochs=1",
            *opts,
        ],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def env_info(work: Path) -> dict:
    (log,) = work.glob("*.log.json")
    return json.loads(log.read_text().splitlines()[0])["env_info"]


def loads_into_timm(ckpt: Path):
    model = timm.create_model("test_resnet", num_classes=4, pretrained=False)
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))


# --- accelerate config files --------------------------------------------------------


@pytest.mark.parametrize("name", YAMLS)
def test_config_file_loads_with_accelerate_and_documents_its_command(name):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    path = LAUNCH / f"{name}.yaml"
    cfg = load_config_from_file(str(path))  # what `accelerate launch --config_file` reads
    assert isinstance(cfg, ClusterConfig)
    assert f"accelerate launch --config_file launch/{name}.yaml" in path.read_text()
    expected = {
        "cpu": ("NO", "no"),
        "single_gpu_bf16": ("NO", "bf16"),
        "single_gpu_fp16": ("NO", "fp16"),
        "multi_gpu": ("MULTI_GPU", "bf16"),
        "multi_node": ("MULTI_GPU", "bf16"),
        "fsdp": ("FSDP", "bf16"),
        "fsdp2": ("FSDP", "bf16"),
        "deepspeed_zero2": ("DEEPSPEED", "bf16"),
    }[name]
    assert (cfg.distributed_type.value, cfg.mixed_precision) == expected
    if name == "fsdp":
        assert cfg.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"
        assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if name == "fsdp2":  # FSDP2 always shards fully (reshard after forward: ZeRO-3)
        assert cfg.fsdp_config["fsdp_version"] == 2
        assert cfg.fsdp_config["fsdp_reshard_after_forward"] is True
        assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if name == "deepspeed_zero2":
        assert cfg.deepspeed_config["zero_stage"] == 2
    if name == "multi_node":
        assert cfg.num_machines > 1 and cfg.main_process_ip is None  # given per node


def test_every_config_file_is_covered():
    assert sorted(p.stem for p in LAUNCH.glob("*.yaml")) == sorted(YAMLS)


@pytest.mark.parametrize(
    "name",
    [
        "cpu",
        pytest.param("single_gpu_bf16", marks=pytest.mark.slow),
        pytest.param("single_gpu_fp16", marks=pytest.mark.slow),
    ],
)
def test_one_process_config_files_train(tmp_path, name):
    """On this CPU machine the one-GPU files run on the CPU with their mixed precision."""
    finish(train((ACCELERATE, "launch", "--config_file", str(LAUNCH / f"{name}.yaml")), tmp_path))
    info = env_info(tmp_path)
    assert info["distributed_type"] == "DistributedType.NO"
    assert (
        info["mixed_precision"]
        == {"cpu": "no", "single_gpu_bf16": "bf16", "single_gpu_fp16": "fp16"}[name]
    )
    loads_into_timm(tmp_path / "epoch_1")


def test_multi_gpu_config_file_on_two_cpu_processes(tmp_path):
    finish(
        train(
            (
                ACCELERATE,
                "launch",
                "--config_file",
                str(LAUNCH / "multi_gpu.yaml"),
                "--num_processes",
                "2",
            ),
            tmp_path,
            "data.samples_per_gpu=8",
        )
    )
    info = env_info(tmp_path)
    assert (info["distributed_type"], info["num_processes"]) == ("DistributedType.MULTI_CPU", 2)
    loads_into_timm(tmp_path / "epoch_1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_node_config_file_as_two_machines_on_localhost(tmp_path):
    """Two `accelerate launch` commands, machine ranks 0 and 1, one process each."""
    port = str(free_port())
    procs = [
        train(
            (
                ACCELERATE,
                "launch",
                "--config_file",
                str(LAUNCH / "multi_node.yaml"),
                "--num_machines",
                "2",
                "--num_processes",
                "2",
                "--machine_rank",
                str(rank),
                "--main_process_ip",
                "127.0.0.1",
                "--main_process_port",
                port,
            ),
            tmp_path,
            "data.samples_per_gpu=8",
        )
        for rank in (0, 1)
    ]
    for p in procs:
        finish(p)
    info = env_info(tmp_path)  # one log: only the global main process writes
    assert (info["distributed_type"], info["num_processes"]) == ("DistributedType.MULTI_CPU", 2)
    loads_into_timm(tmp_path / "epoch_1")


# --- SLURM scripts, with stand-ins for Slurm and the trainer -----------------------------

FAKE_SRUN = """#!/usr/bin/env bash
# stand-in for srun: drop srun's options, run the command as task 0 of node $FAKE_NODEID
while [[ "$1" == --* ]]; do shift; done
SLURM_NODEID=${FAKE_NODEID:-0} exec "$@"
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG/scontrol"
if [ "$1 $2" = "show hostnames" ]; then printf 'node-a\\nnode-b\\n'; fi
"""
# stand-in for `accelerate launch ... train.py ... --work-dir W ...`: FAKE_MODE says how the
# "trainer" ends; TERM is what acchooks' trainer turns into a checkpoint and exit 75
FAKE_ACCELERATE = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$FAKE_LOG/argv"
while [ "$1" != --work-dir ]; do shift; done
work=$2
mkdir -p "$work"
case $FAKE_MODE in
  exit:*) exit "${FAKE_MODE#exit:}" ;;
  marker) echo '{"signal": "SIGTERM"}' > "$work/preempted.json"; exit 1 ;;
  wait_term)
    trap 'echo "{}" > "$work/preempted.json"; exit 75' TERM
    touch "$FAKE_LOG/started"
    for _ in $(seq 300); do sleep 0.1; done; exit 0 ;;
esac
"""


@pytest.fixture()
def fakes(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in [
        ("srun", FAKE_SRUN),
        ("scontrol", FAKE_SCONTROL),
        ("accelerate", FAKE_ACCELERATE),
    ]:
        (bindir / name).write_text(text)
        (bindir / name).chmod(stat.S_IRWXU)
    return tmp_path


def script_env(fakes, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {
        **e,
        "PATH": f"{fakes / 'bin'}{os.pathsep}{e['PATH']}",
        "FAKE_LOG": str(fakes),
        "ACCHOOKS_ROOT": str(ROOT),
        "CONFIG": "configs/x.py",
        "WORK_DIR": str(fakes / "work"),
        **extra,
    }


def run_script(fakes, name="slurm_single_node.sh", *args, **extra):
    return subprocess.run(
        ["bash", str(LAUNCH / name), *args],
        env=script_env(fakes, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "mode,restarts,status,requeued",
    [
        ("exit:0", "0", 0, False),
        ("exit:3", "0", 3, False),  # a crash is not retried
        ("exit:75", "0", 0, True),  # a trainer run directly exits 75
        ("marker", "2", 0, True),  # accelerate launch turns 75 into 1: the marker says why
        ("exit:75", "5", 75, False),  # MAX_RESTARTS (5) reached
    ],
)
def test_requeue_decision(fakes, mode, restarts, status, requeued):
    res = run_script(fakes, FAKE_MODE=mode, SLURM_JOB_ID="42", SLURM_RESTART_COUNT=restarts)
    assert res.returncode == status, res.stdout + res.stderr
    calls = (fakes / "scontrol").read_text() if (fakes / "scontrol").exists() else ""
    assert ("requeue 42" in calls) == requeued
    assert calls.count("requeue") <= 1


def test_single_node_command_line(fakes):
    res = run_script(
        fakes,
        "slurm_single_node.sh",
        "--cfg-options",
        "a=1",
        FAKE_MODE="exit:0",
        GPUS="0",
        NPROC="2",
        LAUNCH_ARGS="--mixed_precision bf16",
    )
    assert res.returncode == 0, res.stderr
    argv = (fakes / "argv").read_text().split("\n")[:-1]
    assert argv == [
        "launch",
        "--num_machines",
        "1",
        "--num_processes",
        "2",
        "--dynamo_backend",
        "no",
        "--multi_gpu",
        "--mixed_precision",
        "bf16",
        str(ROOT / "train.py"),
        "--config",
        "configs/x.py",
        "--work-dir",
        str(fakes / "work"),
        "--resume",
        "auto",
        "--cfg-options",
        "a=1",
    ]


def test_multi_node_command_line(fakes):
    res = run_script(
        fakes,
        "slurm_multi_node.sh",
        FAKE_MODE="exit:0",
        FAKE_NODEID="1",
        GPUS="4",
        SLURM_JOB_NODELIST="node-[a-b]",
        SLURM_NNODES="2",
        ACCELERATE_CONFIG="launch/fsdp.yaml",
    )
    assert res.returncode == 0, res.stderr
    argv = (fakes / "argv").read_text().split("\n")[:-1]
    assert argv[:15] == [
        "launch",
        "--machine_rank",
        "1",
        "--num_machines",
        "2",
        "--num_processes",
        "8",
        "--dynamo_backend",
        "no",
        "--config_file",
        "launch/fsdp.yaml",
        "--main_process_ip",
        "node-a",
        "--main_process_port",
        "29500",
    ]
    assert argv[-2:] == ["--resume", "auto"]


def test_batch_shell_passes_usr1_on_as_term(fakes):
    """Outside Slurm the batch shell TERMs the launcher itself (in a job: scancel)."""
    proc = subprocess.Popen(
        ["bash", str(LAUNCH / "slurm_single_node.sh")],
        env=script_env(fakes, FAKE_MODE="wait_term"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 30
    while not (fakes / "started").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 75, out  # preempted, and no Slurm to requeue with
    assert "USR1 received" in out and (fakes / "work" / "preempted.json").exists()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_scripts_are_shellcheck_clean():
    scripts = sorted(str(p) for p in [*LAUNCH.glob("*.sh"), *(ROOT / "tests" / "gpu").glob("*.sh")])
    res = subprocess.run(["shellcheck", "-x", *scripts], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


# --- a real Slurm: launch/ci_slurm_setup.sh starts a one-node cluster ----------------------


def slurm_ready() -> str | None:
    """None when a Slurm cluster answers with an idle node, else why not."""
    if shutil.which("sbatch") is None:
        return "Slurm is not installed (run launch/ci_slurm_setup.sh as root)"
    try:
        res = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 30 s (is slurmctld running?)"
    if res.returncode != 0 or "idle" not in res.stdout:
        return f"no idle Slurm node (sinfo: {res.stdout.strip() or res.stderr.strip()})"
    return None


SLOW_HOOK = """
import time
from acchooks import HOOKS, Hook

@HOOKS.register_module()
class SleepAfterIter(Hook):  # test-only: leaves time to preempt a running job
    def __init__(self, seconds=1.0):
        self.seconds = seconds

    def after_train_iter(self, runner):
        time.sleep(self.seconds)
"""
# 64 samples / (8 x 2 processes) = 4 iterations per epoch, 4 epochs, checkpoint every epoch
SLURM_OPTS = [
    "--cfg-options",
    "data.samples_per_gpu=8",
    "runner.max_epochs=4",
    "custom_imports={'imports': ['slow_hooks']}",
    "custom_hooks=[{'type': 'SleepAfterIter', 'seconds': 1.0}]",
]


def submit(tmp: Path, work: Path) -> str:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "slow_hooks.py").write_text(SLOW_HOOK)
    e = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp}",
        "ACCHOOKS_ROOT": str(ROOT),
        "ACCELERATE": ACCELERATE,
        "CONFIG": str(TINY),
        "WORK_DIR": str(work),
        "GPUS": "0",
        "NPROC": "2",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    res = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--cpus-per-task=2",
            str(LAUNCH / "slurm_single_node.sh"),
            *SLURM_OPTS,
        ],
        cwd=tmp,
        env=e,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return res.stdout.strip().split(";")[0]


def job(job_id: str) -> dict:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def wait_job(job_id: str, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = job(job_id)
        if info["JobState"] in states:
            return info
        time.sleep(1)
    subprocess.run(["scancel", job_id])
    raise AssertionError(f"job {job_id} still {info['JobState']} after {timeout} s")


@pytest.fixture(scope="module")
def slurm_straight(tmp_path_factory):
    why = slurm_ready()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("slurm_straight")
    job_id = submit(tmp, tmp / "work")
    return tmp, job_id, wait_job(job_id)


@pytest.mark.slow
def test_slurm_single_node_job_trains(slurm_straight):
    tmp, job_id, info = slurm_straight
    log = (tmp / "logs" / f"acchooks-{job_id}.out").read_text()
    assert (info["JobState"], info["ExitCode"], info["Restarts"]) == ("COMPLETED", "0:0", "0"), log
    assert f"acchooks: job {job_id} (restart 0 of at most 5)" in log
    assert "Epoch [4][4/4]" in log and "trainer exited with status 0" in log
    work = tmp / "work"
    assert env_info(work)["distributed_type"] == "DistributedType.MULTI_CPU"
    assert (work / "latest").read_text().strip().endswith("epoch_4")
    loads_into_timm(work / "epoch_4")


@pytest.mark.slow
def test_slurm_preempted_job_saves_requeues_once_and_resumes_exactly(slurm_straight, tmp_path):
    straight, _, _ = slurm_straight
    work = tmp_path / "work"
    job_id = submit(tmp_path, work)
    deadline = time.time() + 180
    while not (work / "epoch_1" / "manifest.json").exists():  # mid-run: epoch 2 of 4
        assert time.time() < deadline and job(job_id)["JobState"] in ("PENDING", "RUNNING")
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True)
    info = wait_job(job_id, states=("PENDING",), timeout=120)  # requeued
    assert info["Restarts"] == "1"
    marker = json.loads((work / "preempted.json").read_text())
    assert marker["signal"] == "SIGTERM" and 4 < marker["iter"] < 16
    # a requeued job waits (BeginTime) until its revoked credential expires: cred_expire + 1 s
    # (launch/ci_slurm_setup.sh sets 10 s; Slurm's default is 120 s). Forcing an earlier start
    # (scontrol update StartTime=now) makes the relaunch fail with a revoked credential.
    info = wait_job(job_id, timeout=300)
    log = (tmp_path / "logs" / f"acchooks-{job_id}.out").read_text()
    assert (info["JobState"], info["ExitCode"], info["Restarts"]) == ("COMPLETED", "0:0", "1"), log
    # one log file per job id, appended across the requeue
    assert (
        log.index(f"job {job_id} (restart 0")
        < log.index("USR1 received")
        < log.index(f"requeuing job {job_id} (restart 1)")
        < log.index(f"job {job_id} (restart 1")
    )
    assert f"resumed from {marker['checkpoint']}" in log
    assert not (work / "preempted.json").exists()
    a = load_file(str(straight / "work" / "epoch_4" / "model.safetensors"))
    b = load_file(str(work / "epoch_4" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- a real Slurm, several nodes: the `multi` partition of launch/ci_slurm_setup.sh ---------
# two emulated nodes n1 n2, one slurmd each (`slurmd -N`), both on this host


def slurm_multi_ready() -> str | None:
    """None when Slurm has a partition `multi` with two nodes up, else why not."""
    why = slurm_ready()
    if why:
        return why
    # one state a node; `-t idle` would count drained nodes too (DRAIN is a flag on IDLE)
    res = subprocess.run(
        ["sinfo", "-h", "-p", "multi", "-N", "-o", "%T"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    up = sum(state in ("idle", "mixed", "allocated") for state in res.stdout.split())
    if up < 2:
        return (
            "no Slurm partition `multi` with 2 nodes up (launch/ci_slurm_setup.sh starts one "
            f"of two emulated nodes; sinfo -p multi: {' '.join(res.stdout.split()) or res.stderr.strip()})"
        )
    return None


# every trainer process records where it ran and whether the process group spans both
# machines (the sum of the machine ranks over all processes: 0 + 1)
NODE_PROBE = """
import json
import os

import torch
import torch.distributed as dist
from acchooks import HOOKS, Hook

KEYS = ("SLURMD_NODENAME", "SLURM_NODEID", "GROUP_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR")


@HOOKS.register_module()
class NodeProbe(Hook):  # test-only
    def before_run(self, runner):
        probe = {k: os.environ.get(k) for k in KEYS}
        t = torch.tensor([float(os.environ["GROUP_RANK"])])
        dist.all_reduce(t)
        probe["world_size"] = dist.get_world_size()
        probe["machine_rank_sum"] = t.item()
        with open(os.path.join(runner.work_dir, f"probe-{probe['RANK']}.json"), "w") as f:
            json.dump(probe, f)
"""


@pytest.mark.slow
def test_slurm_multi_node_job_trains_on_two_nodes(tmp_path):
    why = slurm_multi_ready()
    if why:
        pytest.skip(why)
    work = tmp_path / "work"
    (tmp_path / "logs").mkdir()
    (tmp_path / "node_probe.py").write_text(NODE_PROBE)
    e = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}",
        "ACCHOOKS_ROOT": str(ROOT),
        "ACCELERATE": ACCELERATE,
        "CONFIG": str(TINY),
        "WORK_DIR": str(work),
        "GPUS": "0",
        "NPROC": "1",  # one process per node
        "MAIN_PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    cmd = [
        "sbatch",
        "--parsable",
        "--partition=multi",
        "--nodes=2",
        "--cpus-per-task=1",
        str(LAUNCH / "slurm_multi_node.sh"),
        "--cfg-options",
        "data.samples_per_gpu=8",
        "runner.max_epochs=2",
        "custom_imports={'imports': ['node_probe']}",
        "custom_hooks=[{'type': 'NodeProbe'}]",
    ]
    res = subprocess.run(cmd, cwd=tmp_path, env=e, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip().split(";")[0]
    info = wait_job(job_id)
    log = (tmp_path / "logs" / f"acchooks-{job_id}.out").read_text()
    assert (info["JobState"], info["ExitCode"], info["NumNodes"]) == ("COMPLETED", "0:0", "2"), log
    assert info["NodeList"] == "n[1-2]", info
    assert f"acchooks: job {job_id} (restart 0 of at most 5)" in log
    assert "Epoch [2][4/4]" in log and "trainer exited with status 0" in log
    # one process per machine, machine rank = SLURM_NODEID, rendezvous at the first node
    probes = [json.loads(p.read_text()) for p in sorted(work.glob("probe-*.json"))]
    node = [(p["SLURMD_NODENAME"], p["SLURM_NODEID"], p["GROUP_RANK"], p["RANK"]) for p in probes]
    assert node == [("n1", "0", "0", "0"), ("n2", "1", "1", "1")], probes
    for p in probes:
        assert (p["WORLD_SIZE"], p["MASTER_ADDR"], p["world_size"]) == ("2", "n1", 2), p
        assert p["machine_rank_sum"] == 1.0, p  # one process group over both machines
    info = env_info(work)
    assert (info["distributed_type"], info["num_processes"]) == ("DistributedType.MULTI_CPU", 2)
    assert (work / "latest").read_text().strip().endswith("epoch_2")
    loads_into_timm(work / "epoch_2")
