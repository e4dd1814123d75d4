"""TimmDataset: timm's create_dataset readers (a folder, torchvision's MNIST files) with
timm's transforms; streamed readers and a missing root are clear config errors."""

import struct

import numpy as np
import pytest
import torch
from PIL import Image

from acchooks.datasets import TimmDataset
from acchooks.errors import ConfigError
from acchooks.registry import DATASETS
from acchooks.testing import run_config, tiny_config


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for c, cls in enumerate(("a", "b", "c", "d")):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(4):
            pixels = np.full((36, 40, 3), 60 * c, np.uint8) + rng.integers(0, 20, (36, 40, 3))
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    return tmp_path / "imgs"


def test_folder_reader_trains(folder, tmp_path):
    train = dict(type="TimmDataset", name="", root=str(folder), input_size=32, is_training=True)
    cfg = tiny_config(
        tmp_path / "work",
        data=dict(train=dict(_delete_=True, **train), val=None),
        runner=dict(max_epochs=1),
    )
    runner = run_config(cfg)
    assert runner.iter == 2  # 16 images, batch 8
    ds = DATASETS.build(dict(train, is_training=False))
    assert ds.classes == ["a", "b", "c", "d"]
    image, target = ds[len(ds) - 1]
    assert image.shape == (3, 32, 32) and target == 3


def _write_idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_torchvision_mnist_files_never_downloaded(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for stem, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 0x803)
        _write_idx(raw / f"{stem}-labels-idx1-ubyte", np.arange(n) % 10, 0x801)
    cfg = dict(name="torch/mnist", root=str(tmp_path), input_size=(1, 28, 28), crop_pct=1.0)
    ds = TimmDataset(**cfg, split="train", mean=(0.5,), std=(0.5,))
    assert len(ds) == 12 and ds[7][1] == 7 and ds[7][0].shape == (1, 28, 28)
    assert len(TimmDataset(**cfg, split="validation", mean=(0.5,), std=(0.5,))) == 5
    expected = (torch.from_numpy(ds.dataset.data[7].numpy()).float() / 255 - 0.5) / 0.5
    assert torch.allclose(ds[7][0][0], expected, atol=1e-5)


def test_bad_configs_are_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"root: not found: .*nowhere.*never downloaded"):
        TimmDataset(name="torch/mnist", root=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"streamed readers .*not supported"):
        TimmDataset(name="hfids/shards", root=str(tmp_path))  # wds/: test_webdataset.py
    problems = TimmDataset.check_config(
        dict(name="torh/mnist", root=str(tmp_path), hflp=0.5), path="data.train"
    )
    assert any("'hflp'" in p and "hflip" in p for p in problems), problems
    assert any("unknown reader prefix 'torh/'" in p and "torch" in p for p in problems), problems
