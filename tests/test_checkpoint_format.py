"""Tests for acchooks.checkpoint: the directory format, verification and housekeeping."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import re
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
import xxhash
from torch import nn

import acchooks.checkpoint as ckpt_pkg
from acchooks.checkpoint import (
    CheckpointError,
    clean_staging,
    find_latest,
    load_checkpoint,
    read_latest_pointer,
    remove_checkpoint,
    save_checkpoint,
    update_latest_pointer,
    verify_checkpoint,
)
from acchooks.checkpoint.format import manifest_digest


def _signed(m: dict) -> dict:
    """A hand-edited manifest with its own digest recomputed (only the reader's other
    checks can catch the edit)."""
    return {**m, "manifest_digest": {"xxh3_128": manifest_digest(m)}}


def _equal_dicts(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def _steps(model: nn.Module, opt: torch.optim.Optimizer, seeds: range) -> None:
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        x, y = torch.randn(5, 6, generator=g), torch.randint(0, 3, (5,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _rewrite_manifest_entry(d: Path, name: str) -> None:
    """Make the manifest's size/xxh3_128 for ``name`` match the file as it is now."""
    m = json.loads((d / "manifest.json").read_text())
    data = (d / name).read_bytes()
    m["files"][name] = {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}
    (d / "manifest.json").write_text(json.dumps(_signed(m)))


def test_timm_round_trip_bit_exact(tmp_path):
    model = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    sd = model.state_dict()
    p = save_checkpoint(tmp_path / "epoch_1", model_state=sd, meta={"epoch": 1, "iter": 10})
    assert p == tmp_path / "epoch_1"
    c = load_checkpoint(p)
    _equal_dicts(sd, c.model_state)
    assert c.optimizer_state is None and c.tensors == {} and c.state == {}
    assert c.meta == {"epoch": 1, "iter": 10}
    m = c.manifest
    assert (m["format"], m["version"]) == ("acchooks-checkpoint", 2)
    assert set(m["versions"]) == {"torch", "safetensors", "accelerate", "timm", "acchooks"}
    data = (p / "model.safetensors").read_bytes()
    assert m["files"]["model.safetensors"] == {
        "size": len(data),
        "xxh3_128": xxhash.xxh3_128(data).hexdigest(),
    }
    # The model file is a plain safetensors file that timm models load directly.
    fresh = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    fresh.load_state_dict(safetensors.torch.load_file(p / "model.safetensors"))
    _equal_dicts(sd, fresh.state_dict())


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight


def test_tied_and_non_contiguous_tensors(tmp_path):
    torch.manual_seed(1)
    model = Tied()
    sd = model.state_dict()
    base = torch.arange(12.0).reshape(3, 4)
    extra = {"t": base.t(), "row": base[1], "full": base}  # views sharing one storage
    p = save_checkpoint(tmp_path / "c", model_state=sd, tensors={"views": extra})
    assert load_checkpoint(p).manifest["aliases"] == {"model.safetensors": {"b.weight": "a.weight"}}
    c = load_checkpoint(p)
    _equal_dicts(sd, c.model_state)
    _equal_dicts(extra, c.tensors["views"])
    fresh = Tied()
    fresh.load_state_dict(c.model_state)
    assert fresh.b.weight is fresh.a.weight
    assert torch.equal(fresh.a.weight, model.a.weight)


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.8, 0.95), amsgrad=True),
    ],
    ids=["sgd_momentum", "adamw"],
)
def test_optimizer_round_trip_continues_identically(tmp_path, make_opt):
    model = _small_model()
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.05}]
    opt = make_opt(groups)
    _steps(model, opt, range(3))
    p = save_checkpoint(
        tmp_path / "iter_3", model_state=model.state_dict(), optimizer_state=opt.state_dict()
    )
    _steps(model, opt, range(3, 6))  # the uninterrupted run

    c = load_checkpoint(p)
    for g_saved, g_loaded in zip(
        opt.state_dict()["param_groups"], c.optimizer_state["param_groups"], strict=True
    ):
        for k, v in g_saved.items():
            if k != "params":  # types survive: tuples stay tuples, None/bool/float kept
                assert type(g_loaded[k]) is type(v) and g_loaded[k] == v, k
    resumed = _small_model()
    resumed.load_state_dict(c.model_state)
    opt2 = make_opt(
        [{"params": resumed[0].parameters()}, {"params": resumed[2].parameters(), "lr": 0.05}]
    )
    opt2.load_state_dict(c.optimizer_state)
    _steps(resumed, opt2, range(3, 6))
    _equal_dicts(model.state_dict(), resumed.state_dict())
    tensor_keys = safetensors.torch.load_file(p / "optimizer.safetensors").keys()
    assert all(re.fullmatch(r"state\.\d+\.\w+", k) for k in tensor_keys)


def test_tensor_groups_and_state_json(tmp_path):
    ema = {"w": torch.randn(3, 3), "n": torch.tensor(7, dtype=torch.int64)}
    state = {
        "epoch": 2,
        "hooks": {"EvalHook": {"best": 0.5, "name": None, "ok": True}},
        "lst": [1, 2.5, "x"],
    }
    p = save_checkpoint(
        tmp_path / "epoch_2",
        model_state={"x": torch.ones(2)},
        tensors={"hook.EMAHook": ema, "rng": {"cpu": torch.get_rng_state()}},
        state=state,
    )
    assert (p / "hook.EMAHook.safetensors").is_file() and (p / "state.json").is_file()
    c = load_checkpoint(p)
    _equal_dicts(ema, c.tensors["hook.EMAHook"])
    assert torch.equal(c.tensors["rng"]["cpu"], torch.get_rng_state())
    assert c.state == state


@pytest.mark.parametrize(
    "state, where",
    [
        ({"hooks": {"ema": {"seen": {1, 2}}}}, "hooks.ema.seen"),
        ({"best": [1.0, float("nan")]}, "best[1]"),
        ({"x": float("inf")}, "'x'"),
        ({"t": torch.zeros(1)}, "'t'"),
        ({1: "int key"}, "non-string key"),
    ],
)
def test_non_json_state_rejected_at_save(tmp_path, state, where):
    with pytest.raises(CheckpointError, match=re.escape(where)) as info:
        save_checkpoint(tmp_path / "epoch_1", model_state={"x": torch.ones(1)}, state=state)
    assert "state.json" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_model_state_leaves_nothing(tmp_path):
    with pytest.raises(CheckpointError, match="expected str -> torch.Tensor"):
        save_checkpoint(tmp_path / "epoch_1", model_state={"x": [1, 2]})
    assert list(tmp_path.iterdir()) == []


def test_load_never_unpickles(tmp_path, monkeypatch):
    model = _small_model()
    opt = torch.optim.AdamW(model.parameters())
    _steps(model, opt, range(2))
    p = save_checkpoint(
        tmp_path / "epoch_1",
        model_state=model.state_dict(),
        optimizer_state=opt.state_dict(),
        tensors={"g": {"a": torch.ones(2)}},
        state={"a": 1},
    )

    def boom(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, boom)
    monkeypatch.setattr(torch, "load", boom)
    c = load_checkpoint(p)
    assert c.optimizer_state is not None
    src = "".join(
        Path(m.__file__).read_text()
        for m in (ckpt_pkg, ckpt_pkg.format, ckpt_pkg.reader, ckpt_pkg.optimizer_state)
    )
    assert "import pickle" not in src and "torch.load(" not in src


def _saved(tmp_path: Path, name: str = "epoch_1", it: int = 1) -> Path:
    return save_checkpoint(
        tmp_path / name, model_state={"w": torch.randn(64, 64)}, meta={"iter": it}
    )


def test_truncated_file(tmp_path):
    p = _saved(tmp_path)
    f = p / "model.safetensors"
    size = f.stat().st_size
    f.write_bytes(f.read_bytes()[: size // 2])
    with pytest.raises(
        CheckpointError, match=rf"model\.safetensors: expected {size} bytes.*found {size // 2}"
    ):
        load_checkpoint(p, verify="size")


def test_flipped_byte_same_size(tmp_path):
    p = _saved(tmp_path)
    f = p / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    verify_checkpoint(p, verify="size")  # size still matches
    pattern = (
        r"model\.safetensors: expected xxh3_128 [0-9a-f]{32}, found [0-9a-f]{32}; "
        r"the file is corrupt \(same size, different bytes\)"
    )
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(p)


def test_missing_file(tmp_path):
    p = save_checkpoint(tmp_path / "epoch_1", model_state={"w": torch.ones(2)}, state={"a": 1})
    (p / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"state\.json: missing"):
        load_checkpoint(p)


def test_hostile_header_rejected_without_allocation(tmp_path, monkeypatch):
    p = _saved(tmp_path)
    f = p / "model.safetensors"
    f.write_bytes((10**12).to_bytes(8, "little") + b"{}" + b"\0" * 100)
    _rewrite_manifest_entry(p, "model.safetensors")
    verify_checkpoint(p)  # the manifest agrees with the file: only the header check catches it

    def must_not_read(*args, **kwargs):
        raise AssertionError("load_file reached with a hostile header")

    monkeypatch.setattr(safetensors.torch, "load_file", must_not_read)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*header claims 1000000000000"):
        load_checkpoint(p)


def test_garbage_safetensors_wrapped(tmp_path):
    p = _saved(tmp_path)
    f = p / "model.safetensors"
    f.write_bytes((20).to_bytes(8, "little") + b"this is not json!!!!" + b"\0" * 8)
    _rewrite_manifest_entry(p, "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: safetensors could not read"):
        load_checkpoint(p)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(CheckpointError, match="has no manifest.json.*load_from"):
        load_checkpoint(tmp_path / "plain")
    (tmp_path / "model.pth").write_bytes(b"PK")
    with pytest.raises(CheckpointError, match="is a file.*load_from"):
        load_checkpoint(tmp_path / "model.pth")
    p = _saved(tmp_path)
    m = json.loads((p / "manifest.json").read_text())
    m["files"]["../../etc/passwd"] = {"size": 1}
    (p / "manifest.json").write_text(json.dumps(_signed(m)))
    with pytest.raises(CheckpointError, match="invalid file or group name"):
        load_checkpoint(p)


def test_find_latest_skips_corrupt_and_staging(tmp_path):
    assert find_latest(tmp_path / "nowhere") == (None, [])
    _saved(tmp_path, "epoch_1", it=10)
    good = _saved(tmp_path, "epoch_2", it=20)
    bad = _saved(tmp_path, "epoch_3", it=30)
    (bad / "model.safetensors").write_bytes(b"short")
    (tmp_path / "epoch_4").mkdir()  # no manifest: e.g. copied by hand, incomplete
    staging = tmp_path / ".staging-epoch_5-123-abcd"
    _saved(tmp_path, "tmp", it=50).rename(staging)  # a complete-looking leftover
    (tmp_path / ".latest.tmp-1-2").write_text("x")

    latest, reasons = find_latest(tmp_path)
    assert latest == good
    assert any(r.startswith("skipped epoch_3:") and "model.safetensors" in r for r in reasons)
    assert any(r.startswith("skipped epoch_4:") for r in reasons)
    assert not any("staging" in r for r in reasons)

    removed = clean_staging(tmp_path)
    assert sorted(p.name for p in removed) == [".latest.tmp-1-2", staging.name]
    assert not staging.exists() and good.exists()


def test_latest_pointer(tmp_path):
    assert read_latest_pointer(tmp_path) is None
    p = _saved(tmp_path, "iter_100")
    update_latest_pointer(tmp_path, p)
    assert (tmp_path / "latest").read_text().strip() == "iter_100"
    assert read_latest_pointer(tmp_path) == p
    update_latest_pointer(tmp_path, _saved(tmp_path, "iter_200"))
    assert (tmp_path / "latest").read_text().strip() == "iter_200"
    assert [x.name for x in tmp_path.iterdir() if x.name.startswith(".")] == []


def test_remove_checkpoint(tmp_path):
    p = _saved(tmp_path)
    remove_checkpoint(p)
    assert list(tmp_path.iterdir()) == []
    remove_checkpoint(p)  # already gone: no error
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(CheckpointError, match="refusing to delete"):
        remove_checkpoint(tmp_path / "mine")


def _fail_commit(monkeypatch):
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".staging-"):
            raise OSError("simulated crash before the commit rename")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)


def test_crash_before_commit_keeps_previous(tmp_path, monkeypatch):
    first = _saved(tmp_path, "epoch_1", it=1)
    before = load_checkpoint(first).model_state
    _fail_commit(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        _saved(tmp_path, "epoch_2", it=2)
    with pytest.raises(OSError, match="simulated crash"):
        _saved(tmp_path, "epoch_1", it=1)  # a re-save of the same name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1"]
    _equal_dicts(before, load_checkpoint(first).model_state)
    assert find_latest(tmp_path) == (first, [])


def test_crash_while_writing_manifest(tmp_path, monkeypatch):
    first = _saved(tmp_path, "epoch_1", it=1)
    real = ckpt_pkg.format.write_bytes

    def write(f, data, fsync):
        if f.name == "manifest.json":
            raise KeyboardInterrupt  # e.g. Ctrl-C midway
        real(f, data, fsync)

    monkeypatch.setattr(ckpt_pkg.format, "write_bytes", write)
    with pytest.raises(KeyboardInterrupt):
        _saved(tmp_path, "epoch_2", it=2)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_1"]
    assert find_latest(tmp_path) == (first, [])


def test_resave_same_name_replaces(tmp_path):
    _saved(tmp_path, "epoch_1", it=1)
    p = save_checkpoint(tmp_path / "epoch_1", model_state={"w": torch.zeros(3)}, checksum=False)
    c = load_checkpoint(p)
    assert torch.equal(c.model_state["w"], torch.zeros(3))
    assert c.manifest["files"]["model.safetensors"].keys() == {"size"}
    assert [x.name for x in tmp_path.iterdir()] == ["epoch_1"]


def _as_earlier_version(d: Path) -> None:
    """Make ``d`` what earlier acchooks versions wrote: a sha256 digest per manifest entry
    (format version 1: no digest of the manifest itself)."""
    m = json.loads((d / "manifest.json").read_text())
    m["version"] = 1
    del m["manifest_digest"]
    m["files"] = {
        name: {"size": info["size"], "sha256": hashlib.sha256((d / name).read_bytes()).hexdigest()}
        for name, info in m["files"].items()
    }
    (d / "manifest.json").write_text(json.dumps(m, indent=1))


def test_sha256_manifest_of_earlier_versions_still_verified(tmp_path):
    model = _small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _steps(model, opt, range(2))
    p = save_checkpoint(
        tmp_path / "epoch_1",
        model_state=model.state_dict(),
        optimizer_state=opt.state_dict(),
        state={"a": 1},
        meta={"iter": 1},
    )
    _as_earlier_version(p)
    c = load_checkpoint(p)  # verify='checksum': every sha256 is recomputed and matches
    _equal_dicts(model.state_dict(), c.model_state)
    assert c.state == {"a": 1}
    assert c.optimizer_state["state"].keys() == opt.state_dict()["state"].keys()
    assert find_latest(tmp_path) == (p, [])

    f = p / "optimizer.safetensors"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    verify_checkpoint(p, verify="size")  # same size: only the sha256 sees it
    pattern = (
        rf"{re.escape(str(f))}: expected sha256 [0-9a-f]{{64}}, found [0-9a-f]{{64}}; "
        r"the file is corrupt \(same size, different bytes\)"
    )
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(p)
    latest, reasons = find_latest(tmp_path)
    assert latest is None and len(reasons) == 1 and re.search(pattern, reasons[0])


def test_entry_without_digest_is_size_checked_only(tmp_path):
    p = _saved(tmp_path)
    m = json.loads((p / "manifest.json").read_text())
    m["files"] = {name: {"size": info["size"]} for name, info in m["files"].items()}
    (p / "manifest.json").write_text(json.dumps(_signed(m)))
    f = p / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01
    f.write_bytes(bytes(data))
    assert load_checkpoint(p).model_state["w"].shape == (64, 64)  # nothing to compare with
    f.write_bytes(bytes(data[:-1]))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: expected \d+ bytes"):
        load_checkpoint(p)


def test_tensor_files_are_what_safetensors_writes(tmp_path):
    dtypes = [
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
        torch.complex64,
        *(
            getattr(torch, n)
            for n in ("uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2")
            if hasattr(torch, n)
        ),
    ]
    g = torch.Generator().manual_seed(0)
    group = {
        f"t{i}.{dt}".replace("torch.", ""): (torch.rand(3, 5, generator=g) * 100).to(dt)
        for i, dt in enumerate(dtypes)
    }
    group.update(
        {
            "scalar": torch.tensor(2.5),
            "empty": torch.ones(0, 4),
            'ünïcode "q" \\': torch.ones(2),  # escaped in the JSON header
            "big": torch.randn(1 << 21, generator=g),
        }
    )  # 8 MB: more than one write chunk
    rare = getattr(torch, "float8_e4m3fnuz", None)  # not in our table: safetensors writes it
    tensors = {"rare": {"x": torch.ones(4).to(rare)}} if rare is not None else {}
    p = save_checkpoint(tmp_path / "c", model_state=group, tensors=tensors)
    files = load_checkpoint(p).manifest["files"]
    for fname, expected in [
        ("model.safetensors", group),
        *(("rare.safetensors", t) for t in tensors.values()),
    ]:
        data = (p / fname).read_bytes()
        assert data == safetensors.torch.save(expected, metadata={"format": "pt"}), fname
        assert files[fname] == {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}
    loaded = safetensors.torch.load_file(p / "model.safetensors")
    assert loaded.keys() == group.keys()
    for k, t in group.items():
        assert loaded[k].dtype == t.dtype and loaded[k].shape == t.shape
        assert loaded[k].view(-1).view(torch.uint8).equal(t.view(-1).view(torch.uint8)), k


def _save_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("acchooks-save")]


@pytest.mark.parametrize("fname", ["model.safetensors", "optimizer.safetensors"])
def test_failed_background_fsync_is_a_checkpoint_error(tmp_path, monkeypatch, fname):
    model = _small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _steps(model, opt, range(1))
    first = _saved(tmp_path, "epoch_1", it=1)
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(fname):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(
        CheckpointError,
        match=rf"^{re.escape(fname)}: could not write it "
        r"\(\[Errno 5\] Input/output error\)",
    ):
        save_checkpoint(
            tmp_path / "epoch_2", model_state=model.state_dict(), optimizer_state=opt.state_dict()
        )
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_1"]  # staging dir removed
    assert not _save_threads()  # the background work was waited for
    assert find_latest(tmp_path) == (first, [])


def test_failed_write_is_a_checkpoint_error(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(fd)
        if len(calls) == 2:  # mid-file: buffered, the first tensor; O_DIRECT, the 2nd block
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(
        CheckpointError,
        match=r"^model\.safetensors: could not write it "
        r"\(\[Errno 28\] No space left on device\)",
    ):
        save_checkpoint(  # 6 MiB: two blocks of the O_DIRECT writer's 4 MiB buffer
            tmp_path / "epoch_1", model_state={f"w{i}": torch.ones(3 << 18) for i in range(2)}
        )
    assert list(tmp_path.iterdir()) == [] and not _save_threads()
