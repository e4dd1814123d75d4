"""Checkpoint reliability (issue 13 items 1-3, issue 15 item 3): a NaN streak never rotates
the last finite checkpoint away; auto-resume only tries full-state checkpoints and falls
back past one that cannot be resumed; the manifest is verified too and every JSON file is
checked against its schema; resume hashes each file once."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import xxhash

import acchooks.checkpoint.reader as reader
from acchooks.checkpoint import CheckpointError, load_checkpoint, verify_checkpoint
from acchooks.checkpoint.format import manifest_digest
from acchooks.testing import launch_command, run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
if str(DATA) not in sys.path:  # nan_hooks, for custom_imports in this process
    sys.path.insert(0, str(DATA))
POISON = "custom_imports={'imports': ['nan_hooks']}"


def _poison(epoch: int) -> dict:
    return dict(
        custom_imports=dict(imports=["nan_hooks"]),
        custom_hooks=[dict(type="PoisonWeightsAtEpoch", epoch=epoch, priority="HIGH")],
    )


def _log(work: Path) -> str:
    return max(work.glob("*.log"), key=lambda p: p.stat().st_mtime).read_text()


def _latest(work: Path) -> str:
    return (work / "latest").read_text().strip()


def _signed(d: Path, m: dict) -> None:
    """Write manifest ``m`` of ``d`` with its own digest recomputed."""
    m["manifest_digest"] = {"xxh3_128": manifest_digest(m)}
    (d / "manifest.json").write_text(json.dumps(m))


def _rewrite(d: Path, fname: str, text: str) -> None:
    """Replace ``fname`` with ``text``, its size and checksum updated in a re-signed
    manifest: only the schema checks can tell."""
    (d / fname).write_text(text)
    m = json.loads((d / "manifest.json").read_text())
    data = (d / fname).read_bytes()
    m["files"][fname] = {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}
    _signed(d, m)


# ------------------------------------------------------------------ item 1: NaN streak
def test_nan_streak_never_rotates_the_last_finite_checkpoint_away(tmp_path):
    work = tmp_path / "w"
    ckpt = dict(interval=1, max_keep_ckpts=2)
    run_config(tiny_config(work, runner=dict(max_epochs=4), checkpoint_config=ckpt, **_poison(2)))
    log = _log(work)
    names = sorted(p.name for p in work.glob("epoch_*"))
    assert names == ["epoch_1", "epoch_3", "epoch_4"], names  # epoch_1 kept beyond 2
    assert _latest(work) == "epoch_1"
    verify_checkpoint(work / "epoch_1")  # latest names an existing, complete checkpoint
    assert "keeping epoch_1 beyond max_keep_ckpts=2" in log
    assert "the run ended with NON-FINITE (NaN/inf) weights" in log
    assert "epoch_2, epoch_3, epoch_4" in log and "is epoch_1 (latest)" in log

    first = {p: len(p.read_text()) for p in work.glob("*.log")}
    run_config(
        tiny_config(work, runner=dict(max_epochs=4), checkpoint_config=ckpt, resume_from="auto")
    )
    newest = max(work.glob("*.log"), key=lambda p: p.stat().st_mtime)
    log = newest.read_text()[first.get(newest, 0) :]  # a run in the same second appends
    assert f"resumed from {work / 'epoch_1'}: epoch 1" in log
    assert "NON-FINITE" not in log and _latest(work) == "epoch_4"


def test_nonfinite_raise_stops_at_a_nonfinite_checkpoint(tmp_path):
    cfg = tiny_config(
        tmp_path,
        runner=dict(max_epochs=2),
        checkpoint_config=dict(interval=1),
        optimizer_config=dict(nonfinite="raise"),
        **_poison(2),
    )
    with pytest.raises(FloatingPointError, match=r"checkpoint epoch_2 holds non-finite weights"):
        run_config(cfg)
    assert _latest(tmp_path) == "epoch_1"


# ------------------------------------------------------------------ item 2: what auto tries
def test_auto_resume_never_picks_a_weights_only_best_checkpoint(tmp_path):
    evaluation = dict(interval=1, metric="accuracy", save_best="auto")
    run_config(
        tiny_config(
            tmp_path,
            runner=dict(max_epochs=1),
            checkpoint_config=dict(interval=1),
            evaluation=evaluation,
        )
    )
    assert (tmp_path / "best_accuracy_top-1_epoch_1").is_dir()  # written after epoch_1, same iter
    run = run_config(
        tiny_config(
            tmp_path,
            runner=dict(max_epochs=2),
            checkpoint_config=dict(interval=1),
            evaluation=evaluation,
            resume_from="auto",
        )
    )
    assert f"resumed from {tmp_path / 'epoch_1'}" in _log(tmp_path)
    assert run.epoch == 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A work dir with epoch_1 and epoch_2 of the tiny config."""
    work = tmp_path_factory.mktemp("trained")
    run_config(tiny_config(work, runner=dict(max_epochs=2), checkpoint_config=dict(interval=1)))
    return work


def _deep(d: Path) -> None:
    state = json.loads((d / "state.json").read_text())
    text = json.dumps({**state, "hooks": {"X": "@"}}).replace('"@"', "[" * 200_000 + "]" * 200_000)
    _rewrite(d, "state.json", text)


def _state(d: Path, edit) -> None:
    state = json.loads((d / "state.json").read_text())
    edit(state)
    _rewrite(d, "state.json", json.dumps(state))


def _manifest(d: Path, edit) -> None:
    m = json.loads((d / "manifest.json").read_text())
    edit(m)
    _signed(d, m)


def _foreign(d: Path) -> None:
    """Another model's checkpoint (3 classes, not 4) where epoch_2 was."""
    other = d.parent.parent / "other"
    run_config(
        tiny_config(
            other,
            model=dict(num_classes=3),
            data=dict(train=dict(num_classes=3), val=dict(num_classes=3)),
            runner=dict(max_epochs=2),
            checkpoint_config=dict(interval=1),
        )
    )
    shutil.rmtree(d)
    shutil.copytree(other / "epoch_2", d)


def _flip_world_size(d: Path) -> None:
    f = d / "manifest.json"
    text = f.read_text()
    assert '"world_size": 1' in text
    f.write_text(text.replace('"world_size": 1', '"world_size": 3'))  # one bit: 0x31 -> 0x33


DAMAGE = {  # how epoch_2 is damaged -> what the one message names
    "world_size_flipped": (_flip_world_size, r"manifest\.json: expected manifest_digest"),
    "aliases_a_string": (
        lambda d: _manifest(d, lambda m: m.update(aliases="x")),
        r"manifest\.json: field 'aliases' should be",
    ),
    "tensors_a_list": (
        lambda d: _manifest(d, lambda m: m["contents"].update(tensors=["rng.safetensors"])),
        r"manifest\.json: field 'contents\.tensors' should be",
    ),
    "no_counters": (
        lambda d: _state(d, lambda s: s.pop("counters")),
        r"state\.json: field 'counters' is missing",
    ),
    "string_counters": (
        lambda d: _state(d, lambda s: s["counters"].update(epoch="two")),
        r"state\.json: field 'counters\.epoch' should be a non-negative int",
    ),
    "deep_nesting": (_deep, r"state\.json: nested too deeply"),
    "hooks_a_list": (
        lambda d: _state(d, lambda s: s.update(hooks=[1])),
        r"state\.json: field 'hooks' should be a mapping",
    ),
    "foreign_model": (_foreign, r"model\.safetensors: 2 shape mismatch"),
    "missing_file": (lambda d: (d / "optimizer.json").unlink(), r"optimizer\.json: missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_auto_resume_skips_a_damaged_newest_checkpoint(trained, tmp_path, damage):
    """One message naming the file and field; auto-resume falls back to epoch_1; an
    explicit resume_from is that one error."""
    work = tmp_path / "w"
    shutil.copytree(trained, work)
    for p in work.glob("*.log"):
        p.unlink()
    damage_it, message = DAMAGE[damage]
    damage_it(work / "epoch_2")
    with pytest.raises(ValueError) as e:  # a ConfigError: the CLI's one message, status 2
        run_config(tiny_config(work, runner=dict(max_epochs=2), resume_from=str(work / "epoch_2")))
    one = damage == "foreign_model" or len(str(e.value).splitlines()) == 1  # else: a list
    assert one and re.search(message, str(e.value))

    run = run_config(tiny_config(work, runner=dict(max_epochs=2), resume_from="auto"))
    log = _log(work)
    assert re.search(r"resume auto: skipped epoch_2: .*" + message, log, re.S), log[-3000:]
    assert f"resumed from {work / 'epoch_1'}: epoch 1, iter 4" in log
    assert run.epoch == 2 and "Traceback" not in log


def test_version_1_manifest_without_digest_still_loads(trained, tmp_path):
    d = tmp_path / "epoch_2"
    shutil.copytree(trained / "epoch_2", d)
    m = json.loads((d / "manifest.json").read_text())
    m.pop("manifest_digest")
    (d / "manifest.json").write_text(json.dumps({**m, "version": 1}))
    assert load_checkpoint(d).meta["iter"] == 8  # an earlier acchooks' checkpoint
    (d / "manifest.json").write_text(json.dumps(m))  # version 2 must carry its digest
    with pytest.raises(
        CheckpointError, match=r"manifest\.json: field 'manifest_digest' is missing"
    ):
        load_checkpoint(d)
    work = tmp_path / "w"
    shutil.copytree(trained, work)
    m1 = json.loads((work / "epoch_2" / "manifest.json").read_text())
    m1.pop("manifest_digest")
    (work / "epoch_2" / "manifest.json").write_text(json.dumps({**m1, "version": 1}))
    run_config(tiny_config(work, runner=dict(max_epochs=2), resume_from="auto"))
    log = _log(work)
    assert f"resumed from {work / 'epoch_2'}" in log and "format version 1" in log


# ------------------------------------------------------------------ issue 15 item 3
def test_resume_hashes_each_file_once(trained, tmp_path, monkeypatch):
    work = tmp_path / "w"
    shutil.copytree(trained, work)
    calls: Counter[str] = Counter()
    real = reader.file_digest

    def counting(f, algo="xxh3_128"):
        calls[Path(f).name] += 1
        return real(f, algo)

    monkeypatch.setattr(reader, "file_digest", counting)
    run_config(tiny_config(work, runner=dict(max_epochs=2), resume_from="auto"))
    files = json.loads((work / "epoch_2" / "manifest.json").read_text())["files"]
    assert calls == Counter({name: 1 for name in files})


# ------------------------------------------------------------------ two processes
BIN = Path(sys.executable).parent
TINY = DATA / "tiny_cli.py"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{DATA}"}
LAUNCH = launch_command()


def _train2(work: Path, *opts: str, resume: bool = False) -> subprocess.CompletedProcess:
    cmd = [*LAUNCH, str(ROOT / "train.py"), "--config", str(TINY), "--work-dir", str(work)]
    cmd += ["--resume", "auto"] if resume else []
    res = subprocess.run(
        [*cmd, "--cfg-options", "evaluation.interval=100", *opts],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return res


@pytest.mark.slow
def test_two_processes_fallback_retention_and_raise(tmp_path):
    """2 processes agree: the fallback past a damaged newest checkpoint, retention through a
    NaN streak (latest stays on the last finite one), and the non-zero exit under 'raise'."""
    work = tmp_path / "w"
    res = _train2(work, "runner.max_epochs=2")
    assert res.returncode == 0, res.stderr[-3000:]
    _state(work / "epoch_2", lambda s: s["counters"].update(step="x"))

    poison = "custom_hooks=[{'type': 'PoisonWeightsAtEpoch', 'epoch': 3, 'priority': 'HIGH'}]"
    opts = ["runner.max_epochs=4", "checkpoint_config.max_keep_ckpts=2", POISON, poison]
    res = _train2(work, *opts, resume=True)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "skipped epoch_2:" in out and "counters.step" in out
    assert f"resumed from {work / 'epoch_1'}" in out
    assert sorted(p.name for p in work.glob("epoch_*")) == ["epoch_2", "epoch_3", "epoch_4"]
    assert _latest(work) == "epoch_2" and "NON-FINITE" in out

    opts = ["runner.max_epochs=3", "optimizer_config.nonfinite=raise", POISON, poison]
    res = _train2(work, *opts, resume=True)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "checkpoint epoch_3 holds non-finite weights" in out
    assert f"resumed from {work / 'epoch_2'}" in out and _latest(work) == "epoch_2"
