"""Crash consistency, tested by really killing: SIGKILL at every phase of a save
(``ACCHOOKS_TEST_KILL_AT``, test-only), then the last complete checkpoint must load,
``find_latest`` must pick it, leftovers must be cleaned with a warning and ``--resume auto``
must finish the run."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from acchooks.checkpoint import (
    find_latest,
    load_checkpoint,
    prepare_work_dir,
    read_latest_pointer,
    remove_checkpoint,
    save_checkpoint,
    update_latest_pointer,
)
from acchooks.checkpoint.faults import ENV, PHASES, kill_point
from acchooks.cli.workdir_lock import LOCK_FILE

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"

# phase -> (ACCHOOKS_TEST_KILL_AT, is epoch_2 committed when the kill lands?)
KILLS = {
    "model": ("model:2", False),
    "optimizer": ("optimizer:2", False),
    "before_manifest": ("before_manifest:2", False),
    "before_rename": ("before_rename:2", False),
    "latest": ("latest:2", True),
    "rotation": ("rotation:1", True),  # the first removal happens at the second save
}
assert set(KILLS) == set(PHASES)


# ------------------------------------------------------------ library level (fork, fast)
def _two_saves(work: str, spec: str) -> None:
    """What the runner does with max_keep_ckpts=1: save, point latest, rotate; twice."""
    os.environ[ENV] = spec
    torch.manual_seed(0)
    model = nn.Linear(32, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in (1, 2):
        model(torch.randn(4, 32)).sum().backward()
        opt.step()
        path = save_checkpoint(
            Path(work) / f"epoch_{epoch}",
            model_state=model.state_dict(),
            optimizer_state=opt.state_dict(),
            meta={"epoch": epoch, "iter": epoch},
        )
        update_latest_pointer(work, path)
        if epoch == 2:
            remove_checkpoint(Path(work) / "epoch_1")
    os._exit(0)


@pytest.mark.parametrize("phase", list(KILLS))
def test_sigkill_at_each_phase_keeps_last_complete(tmp_path, phase, caplog):
    spec, committed = KILLS[phase]
    proc = multiprocessing.get_context("fork").Process(
        target=_two_saves, args=(str(tmp_path), spec)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    survivor = tmp_path / ("epoch_2" if committed else "epoch_1")
    assert find_latest(tmp_path, verify="checksum") == (survivor, [])
    ckpt = load_checkpoint(survivor)  # verified with checksums
    assert ckpt.meta["epoch"] == (2 if committed else 1) and ckpt.optimizer_state is not None
    assert (tmp_path / "epoch_2").exists() == committed
    assert read_latest_pointer(tmp_path) == tmp_path / (
        "epoch_2" if phase == "rotation" else "epoch_1"
    )
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert len(leftovers) == 1
    assert leftovers[0].startswith(
        {"latest": ".latest.tmp-", "rotation": ".trash-epoch_1-"}.get(phase, ".staging-epoch_2-")
    )
    if phase == "model":  # the kill left a cut file behind, which stays invisible
        (staging,) = tmp_path.glob(".staging-*")
        assert not (staging / "manifest.json").exists() and (staging / "model.safetensors").exists()

    with caplog.at_level("WARNING", logger="tests.crash"):
        removed = prepare_work_dir(tmp_path, logging.getLogger("tests.crash"))
    assert [p.name for p in removed] == leftovers
    assert f"removed {leftovers[0]}" in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert find_latest(tmp_path, verify="checksum") == (survivor, [])


def test_kill_spec_typo_fails_loudly(monkeypatch):
    monkeypatch.setenv(ENV, "modle:2")
    with pytest.raises(ValueError, match="expected <phase>.*model, optimizer"):
        kill_point("model")
    monkeypatch.setenv(ENV, "model:0")
    with pytest.raises(ValueError, match="n a positive int"):
        kill_point("model")


# ------------------------------------------------------------ the real CLI (slow)
CFG = f"""
_base_ = '{TINY}'
runner = dict(max_epochs=3)
checkpoint_config = dict(interval=1, max_keep_ckpts=1)
evaluation = None
log_config = dict(interval=4, hooks=[dict(type='TextLoggerHook')])
"""


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _hidden(work) -> list[str]:
    """Hidden entries a killed save may leave (the run's lock file stays: it is the lock)."""
    return sorted(p.name for p in work.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE)


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(KILLS))
def test_cli_killed_mid_save_resumes(tmp_path, phase):
    spec, committed = KILLS[phase]
    cfg, work = tmp_path / "crash.py", tmp_path / "work"
    cfg.write_text(CFG)
    args = ["--config", str(cfg), "--work-dir", str(work)]
    res = run_cli(args, tmp_path, env={ENV: spec})
    assert res.returncode == -signal.SIGKILL, res.stdout[-2000:] + res.stderr[-2000:]
    survivor = work / ("epoch_2" if committed else "epoch_1")
    assert find_latest(work, verify="checksum") == (survivor, [])
    load_checkpoint(survivor)
    leftovers = _hidden(work)
    assert leftovers

    res = run_cli([*args, "--resume", "auto"], tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    for name in leftovers:
        assert f"WARNING - removed {name} from {work}" in out
    assert f"resumed from {survivor}: epoch {2 if committed else 1}" in out
    assert not _hidden(work)
    assert sorted(p.name for p in work.glob("epoch_*")) == ["epoch_3"]
    assert find_latest(work, verify="checksum") == (work / "epoch_3", [])
    assert read_latest_pointer(work) == work / "epoch_3"
    assert load_checkpoint(work / "epoch_3").meta["epoch"] == 3


# ------------------------------------------------------------ damaged checkpoints on resume
def _rewrite_manifest(d: Path, name: str) -> None:
    """Make the manifest agree with the file as it is now (so only the reader catches it)."""
    import json

    import xxhash

    from acchooks.checkpoint.format import manifest_digest

    m = json.loads((d / "manifest.json").read_text())
    data = (d / name).read_bytes()
    m["files"][name] = {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}
    m["manifest_digest"] = {"xxh3_128": manifest_digest(m)}
    (d / "manifest.json").write_text(json.dumps(m))


def _damage(kind: str, d: Path) -> str:
    """Damage the checkpoint copy ``d``; return the regex the error must match."""
    model = d / "model.safetensors"
    if kind == "truncated":
        size = model.stat().st_size
        model.write_bytes(model.read_bytes()[: size // 2])
        return rf"{model}: expected {size} bytes .*found {size // 2} bytes"
    if kind == "flipped_byte":
        f = d / "optimizer.safetensors"
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0x01
        f.write_bytes(bytes(data))
        return rf"{f}: expected xxh3_128 [0-9a-f]{{32}}, found [0-9a-f]{{32}}"
    if kind == "missing_file":
        size = (d / "state.json").stat().st_size
        (d / "state.json").unlink()
        return rf"{d / 'state.json'}: missing; manifest.json lists it with {size} bytes"
    if kind == "header_past_eof":
        size = model.stat().st_size
        model.write_bytes(size.to_bytes(8, "little") + model.read_bytes()[8:])
        _rewrite_manifest(d, model.name)
        return rf"{model}: not a valid safetensors file: header claims {size} bytes but the file has {size} bytes"
    if kind == "absurd_tensor":  # a valid header for a 4 TB tensor the file does not hold
        header = b'{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}'
        model.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)
        _rewrite_manifest(d, model.name)
        return rf"{model}: safetensors could not read it"
    if kind == "not_a_checkpoint":
        (d / "manifest.json").unlink()
        return rf"not an acchooks checkpoint: {d} has no manifest.json"
    raise AssertionError(kind)


DAMAGE = [
    "truncated",
    "flipped_byte",
    "missing_file",
    "header_past_eof",
    "absurd_tensor",
    "not_a_checkpoint",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A work dir holding epoch_1, epoch_2 and latest from a real tiny run."""
    from acchooks.testing import run_config, tiny_config

    work = tmp_path_factory.mktemp("trained")
    run_config(tiny_config(work, checkpoint_config=dict(interval=1)))
    return work


def _snapshot(work: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(work)): p.read_bytes()
        for p in sorted(work.rglob("*"))
        if p.is_file() and (p.parent.name.startswith("epoch_") or p.name == "latest")
    }


def _damaged_copy(trained: Path, tmp_path: Path, kind: str) -> tuple[Path, Path, str]:
    import shutil

    work = tmp_path / "work"
    shutil.copytree(trained, work)
    bad = tmp_path / "bad_epoch_2"
    shutil.copytree(trained / "epoch_2", bad)
    return work, bad, _damage(kind, bad)


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_resume_from_is_an_error_before_any_write(trained, tmp_path, kind):
    from acchooks.checkpoint import CheckpointError
    from acchooks.errors import ConfigError
    from acchooks.testing import run_config, tiny_config

    work, bad, pattern = _damaged_copy(trained, tmp_path, kind)
    before = _snapshot(work)
    with pytest.raises(CheckpointError, match=pattern) as info:
        run_config(tiny_config(work, checkpoint_config=dict(interval=1), resume_from=str(bad)))
    assert isinstance(info.value, ConfigError)
    assert _snapshot(work) == before  # nothing overwritten, no fallback to a fresh run


@pytest.mark.parametrize(
    "kind",
    ["truncated", *[pytest.param(k, marks=pytest.mark.slow) for k in DAMAGE if k != "truncated"]],
)
def test_cli_damaged_resume_from_exits_2(trained, tmp_path, kind):
    work, bad, pattern = _damaged_copy(trained, tmp_path, kind)
    before = _snapshot(work)
    res = run_cli(
        ["--config", str(TINY), "--work-dir", str(work), "--resume-from", str(bad)], tmp_path
    )
    out = res.stdout + res.stderr
    assert res.returncode == 2, out[-3000:]
    assert out.count("acchooks: error:") == 1 and "Traceback" not in out
    import re

    assert re.search(pattern, out), out[-2000:]
    assert _snapshot(work) == before


def test_find_latest_checksums_newest_first(tmp_path, monkeypatch):
    import acchooks.checkpoint.reader as reader

    for i in (1, 2, 3):
        save_checkpoint(
            tmp_path / f"epoch_{i}",
            model_state={"w": torch.full((64,), float(i))},
            meta={"epoch": i, "iter": 10 * i},
        )
    f = tmp_path / "epoch_3" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01  # same size: only a checksum sees it
    f.write_bytes(bytes(data))
    hashed = []
    real = reader.file_digest
    monkeypatch.setattr(
        reader, "file_digest", lambda p, algo: hashed.append(p.parent.name) or real(p, algo)
    )
    latest, reasons = find_latest(tmp_path)
    assert latest == tmp_path / "epoch_2"
    assert len(reasons) == 1 and reasons[0].startswith("skipped epoch_3: ")
    assert "expected xxh3_128" in reasons[0]
    assert sorted(set(hashed)) == ["epoch_2", "epoch_3"]  # epoch_1 is never read
