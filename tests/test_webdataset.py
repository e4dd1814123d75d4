"""WebDataset shards (``TimmDataset(name='wds/...')``): the index, the epoch order split
over processes and workers, exact resume, and training through the runner."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from acchooks.datasets.wds_index import expand_braces
from acchooks.datasets.webdataset import WdsShards, streaming_loader
from acchooks.errors import ConfigError, DataError
from acchooks.registry import DATASETS
from acchooks.testing import launch_command, run_config, same_weights, tiny_config, train_losses
from acchooks.testing.shards import PLAIN, SIZES, member, sample_ids
from acchooks.testing.shards import write_wds_shards as write_shards

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("wds") / "shards")


def _dataset(root, **kw):
    cfg = dict(type="TimmDataset", name="wds/toy", root=root, **{**PLAIN, **kw})
    return DATASETS.build(cfg)


def _batches(ds, workers=0, batch_size=4, rank=0, world=1, epoch=0, skip=0):
    opts = dict(samples_per_gpu=batch_size, workers_per_gpu=workers, pin_memory=False)
    loader = streaming_loader(ds, {**opts, "persistent_workers": False}, 0, "train", True)
    ds.configure(batch_size, rank, world, seed=0)
    loader.set_epoch(epoch)  # as the runner does (Accelerate's loader sets it on each pass)
    if skip:
        ds.skip_batches(skip)
    return list(loader)


def _ids(batches):
    return [sample_ids(images) for images, _ in batches]


def test_config_and_index(shards, tmp_path):
    assert expand_braces("a{08..10}b{x,y}") == [
        "a08bx",
        "a08by",
        "a09bx",
        "a09by",
        "a10bx",
        "a10by",
    ]
    ds = _dataset(shards)
    assert isinstance(ds, WdsShards) and ds.sizes == list(SIZES) and len(ds.keys) == 60
    assert ds.labels.tolist() == [i % 4 for i in range(60)]
    image, label = ds.load(0)
    assert image.shape == (3, 16, 16) and 0 <= label < 4
    folder = _dataset(str(Path(shards).parent))  # a folder: all its tars, sorted
    assert folder.paths == ds.paths
    with pytest.raises(ConfigError, match="matches no shard file"):
        _dataset(str(tmp_path / "none-{0..3}.tar"))
    with pytest.raises(ConfigError, match=r"shard files not found: .*train-000007.tar"):
        _dataset(shards.replace("000005", "000007"))
    bad = write_shards(tmp_path / "bad", [3, 2], label=lambda i: None if i == 4 else "1")
    with pytest.raises(ConfigError, match=r"train-000001.tar: sample '000004' has no label"):
        _dataset(bad)
    with pytest.raises(ConfigError, match="not supported"):
        _dataset(shards, class_map={"a": 0})
    jpgs = tmp_path / "jpg.tar"
    with tarfile.open(jpgs, "w") as tar:
        buf = io.BytesIO()
        Image.new("RGB", (20, 20), (200, 10, 10)).save(buf, format="JPEG")
        member(tar, "x/a.b.jpg", buf.getvalue())
        member(tar, "x/a.b.json", json.dumps({"label": 3}).encode())
        member(tar, "y.jpeg", buf.getvalue())
        member(tar, "y.cls.txt", b" 2\n")
    one = _dataset(str(jpgs))
    assert one.keys == ["0/x/a", "0/y"] and one.labels.tolist() == [3, 2]


def test_a_corrupt_image_names_the_shard_and_the_sample(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    with tarfile.open(folder / "train-0.tar", "w") as tar:
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (5, 0, 0)).save(buf, format="PNG")
        member(tar, "good.png", buf.getvalue())
        member(tar, "good.cls", b"0")
        member(tar, "broken.png", buf.getvalue()[:30])  # truncated
        member(tar, "broken.cls", b"1")
    ds = _dataset(str(folder / "train-0.tar"), shuffle_buffer=0)
    ds.configure(2, 0, 1, seed=0)
    ds.set_epoch(0)
    broken = [p for p in range(2) if ds.keys[ds.epoch_ids(0)[p]].endswith("broken")][0]
    with pytest.raises(DataError, match=r"cannot read sample 1 \('0/broken'.*train-0.tar"):
        ds.load(broken)


def test_order_split_over_workers_and_ranks(shards):
    ds = _dataset(shards, shuffle_buffer=8)
    epoch0 = _ids(_batches(ds, workers=0))
    assert len(ds) == 60 and len(epoch0) == 15
    assert _ids(_batches(ds, workers=1)) == epoch0
    assert _ids(_batches(ds, workers=2)) == epoch0
    epoch1 = _ids(_batches(ds, epoch=1))
    assert epoch1 != epoch0 and sorted(sum(epoch1, [])) == list(range(60))
    # 2 processes x 7 per batch: 56 of 60 samples, disjoint halves
    ranks = [sum(_ids(_batches(ds, batch_size=7, rank=r, world=2, epoch=2)), []) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 28 and not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == sorted(ds.epoch_ids(2).tolist())
    with_workers = sum(_ids(_batches(ds, 2, batch_size=7, rank=1, world=2, epoch=2)), [])
    assert with_workers == ranks[1]
    ds.configure(7, 0, 2, seed=0)
    assert len(ds) == 28 and len(set(ds.epoch_ids(3).tolist())) == 56
    # the global batches are the same for 1 process x 8 and 2 x 4: a resume on another
    # number of processes continues the epoch's order (the runner re-expresses the position)
    one = _ids(_batches(ds, batch_size=8, epoch=4))
    two = [_ids(_batches(ds, batch_size=4, rank=r, world=2, epoch=4)) for r in (0, 1)]
    assert one == [a + b for a, b in zip(*two, strict=True)]


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_batches_resumes_exactly(shards, workers):
    ds = _dataset(shards, input_size=12, is_training=True)
    full = _batches(ds, workers, epoch=1)
    rest = _batches(ds, workers, epoch=1, skip=6)
    assert len(rest) == len(full) - 6
    for (a, ta), (b, tb) in zip(full[6:], rest, strict=True):
        assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.equal(full[0][0], _batches(ds, workers, epoch=2)[0][0])
    assert len(_batches(ds, workers, epoch=1)) == len(full)  # a new pass: no skip


def _config(work, shards, **kw):
    train = dict(type="TimmDataset", name="wds/toy", root=shards, input_size=16, is_training=True)
    base = dict(
        data=dict(workers_per_gpu=2, train=dict(_delete_=True, **train), val=None),
        model=dict(drop_rate=0.3),
        optimizer=dict(_delete_=True, type="AdamW", lr=1e-3, weight_decay=0.05),
        checkpoint_config=dict(interval=3, by_epoch=False),
        runner=dict(max_epochs=2),
    )
    for k, v in kw.items():
        base[k] = {**base[k], **v} if k == "data" else v
    return tiny_config(work, **base)


def test_trains_and_resumes_mid_epoch_exactly(shards, tmp_path):
    straight = tmp_path / "straight"
    runner = run_config(_config(straight, shards))
    assert runner.iter == 14  # 60 samples, batch 8: 7 iterations per epoch
    shutil.copytree(straight / "iter_9", tmp_path / "r" / "iter_9")
    resumed = run_config(_config(tmp_path / "r", shards, resume_from=str(tmp_path / "r/iter_9")))
    assert resumed.iter == 14 and resumed.epoch == 2
    assert train_losses(tmp_path / "r") == train_losses(straight)[9:]
    assert same_weights(straight / "iter_12", tmp_path / "r" / "iter_12")


def test_iter_based_runner(shards, tmp_path):
    runner = run_config(
        _config(tmp_path, shards, runner=dict(_delete_=True, type="IterBasedRunner", max_iters=9))
    )
    assert runner.iter == 9 and runner.epoch == 1


def test_refusals_and_longer_epochs(shards, tmp_path):
    val = dict(_delete_=True, type="TimmDataset", name="wds/toy", root=shards, input_size=16)
    with pytest.raises(ConfigError, match=r"data.val: .*data.train only"):
        run_config(
            _config(tmp_path, shards, data=dict(val=val), workflow=[("train", 1), ("val", 1)])
        )
    ds = _dataset(shards)
    opts = dict(samples_per_gpu=4, workers_per_gpu=0, pin_memory=False, persistent_workers=False)
    with pytest.raises(ConfigError, match="no `sampler`"):
        streaming_loader(ds, opts, 0, "train", True, sampler=dict(type="RepeatAugSampler"))
    ds.num_samples = 100  # more than the 60 samples: passes repeat, each reshuffled
    ds.configure(8, 0, 1, seed=0)
    ids = ds.epoch_ids(0).tolist()
    assert len(ids) == 96 and sorted(ids[:60]) == list(range(60)) and ids[60:] != ids[:36]


def _cli(shards: str, work: Path, processes: int, *options: str) -> dict:
    """``train.py`` on the shards (eval transform: ids readable) with the id probe, on
    ``processes`` processes; returns {(epoch, rank): [(inner_iter, ids), ...]}."""
    cfg = work.parent / f"{work.name}_cfg.py"
    train = dict(type="TimmDataset", name="wds/toy", root=shards, is_training=False, **PLAIN)
    cfg.write_text(
        (ROOT / "tests/data/tiny_cli.py").read_text()
        + f"\ndata = dict(samples_per_gpu=7, workers_per_gpu=2, train={train!r}, val=None)\n"
        + "evaluation = None\ncustom_imports = dict(imports=['wds_probe'])\n"
        + "custom_hooks = [dict(type='WdsIdProbe')]\n"
    )
    launcher = launch_command(processes) if processes > 1 else [sys.executable]
    res = subprocess.run(
        [*launcher, str(ROOT / "train.py"), "--config", str(cfg), "--work-dir", str(work)]
        + (["--cfg-options", *options] if options else []),
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'data'}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ids: dict = {}
    for r in range(processes):
        for line in (work / f"wds_ids_rank{r}.jsonl").read_text().splitlines():
            epoch, inner, batch = json.loads(line)
            ids.setdefault((epoch, r), []).append((inner, batch))
    return ids


@pytest.mark.slow
def test_two_processes_read_disjoint_samples(tmp_path):
    shards = write_shards(tmp_path / "shards")
    got = _cli(shards, tmp_path / "w", 2)
    ids = {k: sum((b for _, b in v), []) for k, v in got.items()}
    ds = _dataset(shards)
    ds.configure(7, 0, 2, seed=0)
    for epoch in (0, 1):
        a, b = ids[(epoch, 0)], ids[(epoch, 1)]
        assert len(a) == len(b) == 28 and not set(a) & set(b)
        assert sorted(a + b) == sorted(ds.epoch_ids(epoch).tolist())
    assert ids[(0, 0)] != ids[(1, 0)]


@pytest.mark.slow
def test_resume_on_two_processes_continues_the_order(tmp_path):
    """1 process x 8, stopped after 3 of 7 batches; resumed on 2 processes x 4: the same
    global batches from batch 4 of epoch 1 on."""
    shards = write_shards(tmp_path / "shards")
    opts = ["data.samples_per_gpu=8", "checkpoint_config.interval=3"]
    opts += ["checkpoint_config.by_epoch=False"]
    straight = _cli(shards, tmp_path / "s", 1, *opts)
    shutil.copytree(tmp_path / "s" / "iter_3", tmp_path / "r" / "iter_3")
    resumed = _cli(
        shards, tmp_path / "r", 2, *opts[1:], "data.samples_per_gpu=4", "resume_from=auto"
    )
    assert resumed[(0, 0)][0][0] == resumed[(0, 1)][0][0] == 3  # continued at batch 4
    for epoch, start in ((0, 3), (1, 0)):
        expected = [b for i, b in straight[(epoch, 0)] if i >= start]
        ranks = [[b for _, b in resumed[(epoch, r)]] for r in (0, 1)]
        assert len(expected) == 7 - start
        assert [a + b for a, b in zip(*ranks, strict=True)] == expected
