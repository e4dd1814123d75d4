"""TimmDataset with ``name='hfds/<folder>'``: a local Hugging Face dataset (``save_to_disk``
output, parquet files, an imagefolder tree) read by timm's ``hfds`` reader, which calls
``datasets.load_dataset(<folder>, split=split, cache_dir=root)``; nothing downloaded."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
from PIL import Image  # noqa: E402

from acchooks.checkpoint import load_checkpoint  # noqa: E402
from acchooks.datasets import TimmDataset  # noqa: E402
from acchooks.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
NAMES = ["cat", "dog", "fox", "owl"]


def _images(n: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    rng = np.random.default_rng(seed)
    labels = [i % len(NAMES) for i in range(n)]
    pixels = [
        np.full((36, 40, 3), 60 * c, np.uint8) + rng.integers(0, 20, (36, 40, 3)) for c in labels
    ]
    return [Image.fromarray(p.astype(np.uint8)) for p in pixels], labels


def _dataset_dict() -> "datasets.DatasetDict":
    features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=NAMES))
    splits = {}
    for split, n, seed in (("train", 16, 0), ("validation", 8, 1)):
        images, labels = _images(n, seed)
        splits[split] = datasets.Dataset.from_dict(
            {"image": images, "label": labels}, features=features
        )
    return datasets.DatasetDict(splits)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """The same dataset three ways: save_to_disk, hub-style parquet files, an imagefolder
    tree; and an (empty) cache folder for timm's ``root``."""
    base = tmp_path_factory.mktemp("hf")
    dd = _dataset_dict()
    dd.save_to_disk(str(base / "disk"))
    for split, ds in dd.items():
        (base / "parquet" / "data").mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(base / "parquet" / "data" / f"{split}-00000-of-00001.parquet"))
        for i, row in enumerate(ds):
            folder = base / "imagefolder" / split / NAMES[row["label"]]
            folder.mkdir(parents=True, exist_ok=True)
            row["image"].save(folder / f"{i}.png")
    (base / "cache").mkdir()
    return base


@pytest.mark.parametrize("layout", ["disk", "parquet", "imagefolder"])
def test_local_folder_reads_with_class_names(hf_dirs, layout):
    name, cache = f"hfds/{hf_dirs / layout}", str(hf_dirs / "cache")
    ds = TimmDataset(name=name, root=cache, split="train", input_size=32)
    assert len(ds) == 16 and ds.classes == NAMES
    image, _ = ds[5]
    assert image.shape == (3, 32, 32)
    assert sorted(ds[i][1] for i in range(16)) == sorted(list(range(4)) * 4)
    val = TimmDataset(name=name, root=cache, split="validation", input_size=32)
    assert len(val) == 8 and sorted(val[i][1] for i in range(8)) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_missing_root_folder_or_split_is_a_config_error(hf_dirs, tmp_path):
    disk, cache = hf_dirs / "disk", str(hf_dirs / "cache")
    with pytest.raises(ConfigError, match=r"root: not found: .*nowhere"):
        TimmDataset(name=f"hfds/{disk}", root=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"local Hugging Face dataset folder not found"):
        TimmDataset(name=f"hfds/{tmp_path / 'missing'}", root=cache)
    with pytest.raises(ConfigError, match=r"split 'test'.*Unknown split"):
        TimmDataset(name=f"hfds/{disk}", root=cache, split="test")
    with pytest.raises(ConfigError, match=r"one Dataset's save_to_disk .*DatasetDict\(train="):
        TimmDataset(name=f"hfds/{disk / 'train'}", root=cache)


def test_cli_trains_one_epoch_and_checkpoint_records_classes(hf_dirs, tmp_path):
    hf = dict(type="TimmDataset", name=f"hfds/{hf_dirs / 'disk'}", root=str(hf_dirs / "cache"))
    cfg = tmp_path / "hf.py"
    cfg.write_text(
        f"_base_ = {str(TINY)!r}\n"
        "data = dict(samples_per_gpu=8,\n"
        f"    train=dict(_delete_=True, **{hf!r}, split='train', input_size=32, is_training=True,"
        " hflip=0.5),\n"
        f"    val=dict(_delete_=True, **{hf!r}, split='validation', input_size=32))\n"
        "runner = dict(max_epochs=1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(cfg), "--work-dir", "work"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    meta = load_checkpoint(tmp_path / "work" / "epoch_1").meta
    assert meta["classes"] == NAMES


def test_other_column_names_through_dataset_kwargs(tmp_path):
    images, labels = _images(8, 2)
    features = datasets.Features(img=datasets.Image(), fine=datasets.ClassLabel(names=NAMES))
    ds = datasets.Dataset.from_dict({"img": images, "fine": labels}, features=features)
    datasets.DatasetDict(train=ds).save_to_disk(str(tmp_path / "cols"))
    (tmp_path / "cache").mkdir()
    tds = TimmDataset(
        name=f"hfds/{tmp_path / 'cols'}",
        root=str(tmp_path / "cache"),
        input_size=32,
        dataset_kwargs=dict(input_key="img", target_key="fine"),
    )
    assert tds.classes == NAMES and len(tds) == 8 and tds[3][1] == 3
