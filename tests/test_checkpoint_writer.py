"""The fast tensor writer: its files are byte for byte what ``safetensors.torch`` writes,
with ``O_DIRECT`` (where the file system takes it) and with buffered writes."""

from __future__ import annotations

import errno
import os

import pytest
import safetensors.torch
import torch

from acchooks.checkpoint import load_checkpoint, save_checkpoint, writer
from acchooks.checkpoint.writer import ST_METADATA, direct_io_enabled


def _takes_o_direct(folder) -> bool:
    """Whether ``folder``'s file system accepts O_DIRECT (tmpfs does not)."""
    if not hasattr(os, "O_DIRECT"):
        return False
    try:
        os.close(os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError:
        return False
    return True


def _spy_open_flags(monkeypatch) -> list[int]:
    """The flags of every ``os.open`` of a ``.safetensors`` file from now on."""
    flags, real = [], os.open

    def spy(path, fl, *a, **k):
        if str(path).endswith(".safetensors"):
            flags.append(fl)
        return real(path, fl, *a, **k)

    monkeypatch.setattr(os, "open", spy)
    return flags


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        # sizes around the 4 MiB chunk and the 4 KiB O_DIRECT block, and odd ones
        "big": torch.randn(1024 * 1024 + 333, generator=g),
        "block": torch.randn(1024, generator=g),
        "odd": torch.randn(7, 3, generator=g),
        "half": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(3, 3, generator=g).bfloat16(),
        "ints": torch.arange(11, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.empty(0, 4),
        "scalar": torch.tensor(2.5),
    }


@pytest.mark.parametrize("direct", ["1", "0"])
def test_files_are_safetensors_bytes(tmp_path, monkeypatch, direct):
    monkeypatch.setenv("ACCHOOKS_DIRECT_IO", direct)
    assert direct_io_enabled() == (direct == "1" and hasattr(os, "O_DIRECT"))
    expect_direct = direct == "1" and _takes_o_direct(tmp_path)
    flags = _spy_open_flags(monkeypatch)
    model = _tensors()
    p = save_checkpoint(tmp_path / "c", model_state=model, tensors={"ema": {"w": model["odd"]}})
    # the path under test was really taken (a silent fallback would pass the byte checks)
    assert len(flags) == 2 and all(
        bool(f & getattr(os, "O_DIRECT", 0)) == expect_direct for f in flags
    ), flags
    expected = safetensors.torch.save(model, metadata=ST_METADATA)
    assert (p / "model.safetensors").read_bytes() == expected
    assert (p / "ema.safetensors").read_bytes() == safetensors.torch.save(
        {"w": model["odd"]}, metadata=ST_METADATA
    )
    c = load_checkpoint(p)  # sizes and checksums in the manifest match the files
    for k, v in model.items():
        assert c.model_state[k].dtype == v.dtype and torch.equal(c.model_state[k], v), k


def test_direct_and_buffered_writes_agree_on_every_length(tmp_path, monkeypatch):
    """One uint8 tensor of each length around the block size: the same file both ways."""
    for n in (1, 4095, 4096, 4097, 3 * 4096 - 24):
        t = {"x": torch.arange(n, dtype=torch.int64).to(torch.uint8)}
        files = []
        for direct in ("1", "0"):
            monkeypatch.setenv("ACCHOOKS_DIRECT_IO", direct)
            p = save_checkpoint(tmp_path / f"c{n}_{direct}", model_state=t)
            files.append((p / "model.safetensors").read_bytes())
        assert files[0] == files[1] == safetensors.torch.save(t, metadata=ST_METADATA), n


def test_refused_direct_writes_fall_back_to_buffered(tmp_path, monkeypatch):
    """A file system that opens with O_DIRECT but refuses its writes (EINVAL): the file is
    rewritten buffered, with the same bytes and a matching checksum."""
    if not _takes_o_direct(tmp_path):
        pytest.skip("this file system does not take O_DIRECT")

    def refuse(fd, block):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(writer, "_write_block", refuse)
    model = _tensors()
    p = save_checkpoint(tmp_path / "c", model_state=model)
    assert (p / "model.safetensors").read_bytes() == safetensors.torch.save(
        model, metadata=ST_METADATA
    )
    load_checkpoint(p)  # the manifest's checksum is the buffered write's
