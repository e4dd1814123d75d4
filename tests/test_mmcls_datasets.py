"""MMClassification 0.x dataset types (CustomDataset, ImageNet, CIFAR10/100, MNIST,
FashionMNIST, VOC), their mapped ``pipeline`` lists, and bad data: every file here is
written by the tests (CIFAR batches in the official pickle format, MNIST idx files, a VOC
layout), and each type trains timm's test_resnet for a couple of iterations."""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform

from acchooks.errors import ConfigError, DataError
from acchooks.registry import DATASETS
from acchooks.testing import run_config, tiny_config

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
NORM = dict(type="Normalize", mean=MEAN, std=STD, to_rgb=True)
TRAIN = [
    dict(type="LoadImageFromFile"),
    dict(type="RandomResizedCrop", size=16, backend="pillow"),
    dict(type="RandomFlip", flip_prob=0.5, direction="horizontal"),
    NORM,
    dict(type="ImageToTensor", keys=["img"]),
    dict(type="ToTensor", keys=["gt_label"]),
    dict(type="Collect", keys=["img", "gt_label"]),
]
TEST = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", size=(20, -1), backend="pillow"),
    dict(type="CenterCrop", crop_size=16),
    NORM,
    dict(type="Collect", keys=["img"]),
]
CLASSES = ["cat", "dog"]


def _image(rng: np.random.Generator, label: int, size: int = 24) -> Image.Image:
    img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    img[..., label] += 150  # learnable: the class is the dominant channel
    return Image.fromarray(img)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """ImageNet's layout: train/<class>/*.png, a flat val/ with meta/val.txt, a classes file."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    val_lines = []
    for label, name in enumerate(CLASSES):
        (root / "train" / name).mkdir(parents=True)
        for i in range(8):
            _image(rng, label).save(root / "train" / name / f"{i}.png")
    (root / "val").mkdir()
    for i in range(8):
        _image(rng, i % 2).save(root / "val" / f"v{i}.png")
        val_lines.append(f"v{i}.png {i % 2}")
    (root / "meta").mkdir()
    (root / "meta" / "val.txt").write_text("\n".join(val_lines) + "\n")
    (root / "meta" / "classes.txt").write_text("cat\ndog\n")
    return root


def _train(tmp_path, train, val, num_classes=2, metric="accuracy", **model):
    cfg = tiny_config(
        tmp_path / "work",
        model=dict(num_classes=num_classes, **model),
        data=dict(_delete_=True, samples_per_gpu=8, workers_per_gpu=0, train=train, val=val),
        runner=dict(max_epochs=1),
        evaluation=dict(interval=1, metric=metric),
    )
    if metric == "accuracy":
        cfg["evaluation"]["metric_options"] = {"topk": (1,)}
    runner = run_config(cfg)
    (log,) = (tmp_path / "work").glob("*.log.json")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return (
        runner,
        [r for r in rows if r.get("mode") == "train"],
        [r for r in rows if r.get("mode") == "val"],
    )


# ------------------------------------------------------------------ training, per type
def test_imagenet_layout_trains(tree, tmp_path):
    train = dict(type="ImageNet", data_prefix=str(tree / "train"), pipeline=TRAIN, classes=CLASSES)
    val = dict(
        type="ImageNet",
        data_prefix=str(tree / "val"),
        ann_file=str(tree / "meta" / "val.txt"),
        pipeline=TEST,
        classes=str(tree / "meta" / "classes.txt"),
        test_mode=True,
    )
    runner, trained, (evaluated,) = _train(tmp_path, train, val)
    assert len(trained) == 2 and all(np.isfinite(r["loss"]) for r in trained)  # 16 / 8
    assert "accuracy_top-1" in evaluated
    dataset = runner.data_loaders["val"].dataset
    assert dataset.classes == CLASSES and dataset.targets == [0, 1] * 4


def test_imagenet_defaults_to_the_1000_classes(tree):
    ds = DATASETS.build(
        dict(type="ImageNet", data_prefix=str(tree / "val"), ann_file=str(tree / "meta/val.txt"))
    )
    assert len(ds.classes) == 1000 and ds.classes[0] == "tench, Tinca tinca"
    img, label = ds[1]
    assert label == 1 and img.shape == (3, 24, 24) and img.max() > 1  # no Normalize: 0-255


def test_custom_dataset_annotation_file_with_class_names(tree, tmp_path):
    ann = tmp_path / "ann.txt"
    ann.write_text("".join(f"{c}/{i}.png {c}\n" for c in CLASSES for i in range(8)))
    train = dict(
        type="CustomDataset",
        data_prefix=str(tree / "train"),
        ann_file=str(ann),
        classes=CLASSES,
        pipeline=TRAIN,
    )
    val = dict(train, pipeline=TEST, test_mode=True)
    runner, trained, _ = _train(tmp_path, train, val)
    assert len(trained) == 2
    assert runner.data_loaders["train"].dataset.targets == [0] * 8 + [1] * 8


def _cifar(root, name: str, monkeypatch) -> None:
    """CIFAR batch files in the official format (pickled dicts, CHW rows of 3072 bytes);
    torchvision's expected MD5s are patched to those of the files written here."""
    import torchvision

    tv = getattr(torchvision.datasets, name)
    folder = root / tv.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    key = "labels" if name == "CIFAR10" else "fine_labels"
    n_cls = 10 if name == "CIFAR10" else 100

    def write(fname, obj):
        (folder / fname).write_bytes(pickle.dumps(obj))
        return [fname, hashlib.md5((folder / fname).read_bytes()).hexdigest()]

    per_file = 16 // len(tv.train_list)  # 16 train samples in all, 16 test samples
    batches, train_files = [], {f for f, _ in tv.train_list}
    for f, _ in tv.train_list + tv.test_list:
        labels = [i % 2 for i in range(per_file if f in train_files else 16)]
        rows = [np.asarray(_image(rng, t, 32)).transpose(2, 0, 1).reshape(-1) for t in labels]
        batches.append(write(f, {"data": np.stack(rows), key: labels}))
    names = [f"class{i}" for i in range(n_cls)]
    meta = write(tv.meta["filename"], {tv.meta["key"]: names})
    n = len(tv.train_list)
    monkeypatch.setattr(tv, "train_list", batches[:n])
    monkeypatch.setattr(tv, "test_list", batches[n:])
    monkeypatch.setattr(tv, "meta", dict(tv.meta, md5=meta[1]))


CIFAR_TRAIN = [
    dict(type="RandomCrop", size=32, padding=4),
    dict(type="RandomFlip", flip_prob=0.5, direction="horizontal"),
    dict(type="Normalize", mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7], to_rgb=False),
    dict(type="ImageToTensor", keys=["img"]),
    dict(type="Collect", keys=["img", "gt_label"]),
]


@pytest.mark.parametrize("name", ["CIFAR10", "CIFAR100"])
def test_cifar_trains_from_the_official_batch_format(name, tmp_path, monkeypatch):
    _cifar(tmp_path / "cifar", name, monkeypatch)
    train = dict(type=name, data_prefix=str(tmp_path / "cifar"), pipeline=CIFAR_TRAIN)
    val = dict(train, pipeline=CIFAR_TRAIN[2:], test_mode=True)
    n = 10 if name == "CIFAR10" else 100  # the head matches the classes (ClassNumCheck)
    runner, trained, (evaluated,) = _train(tmp_path, train, val, num_classes=n)
    assert len(trained) == 2 and "accuracy_top-1" in evaluated
    ds = runner.data_loaders["val"].dataset
    assert len(ds.classes) == (10 if name == "CIFAR10" else 100) and ds.targets[:2] == [0, 1]
    raw = np.asarray(ds.images[1], dtype=np.float32)  # RGB kept (to_rgb=False on arrays)
    img, _ = ds[1]
    want = (raw[..., 0] / 255 - 125.3 / 255) / (63.0 / 255)
    assert torch.allclose(img[0], torch.from_numpy(want), atol=1e-4)


def _idx(path, array: np.ndarray) -> None:
    code = 0x0800 + array.ndim  # uint8, ndim dimensions
    path.write_bytes(struct.pack(">I", code) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())  # fmt: skip


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_mnist_trains_from_idx_files(name, tmp_path):
    rng = np.random.default_rng(2)
    labels = np.arange(16) % 2
    images = rng.integers(0, 60, (16, 28, 28), dtype=np.uint8)
    images[labels == 1, 8:20, 8:20] = 250
    for split in ("train", "t10k"):
        _idx(tmp_path / f"{split}-images-idx3-ubyte", images)
        _idx(tmp_path / f"{split}-labels-idx1-ubyte", labels)
    pipeline = [
        dict(type="Resize", size=32),
        dict(type="Normalize", mean=[33.46], std=[78.87], to_rgb=True),
        dict(type="ImageToTensor", keys=["img"]),
    ]
    train = dict(type=name, data_prefix=str(tmp_path), pipeline=pipeline)
    val = dict(train, test_mode=True)
    runner, trained, _ = _train(tmp_path, train, val, num_classes=10, in_chans=1)
    assert len(trained) == 2
    ds = runner.data_loaders["val"].dataset
    assert ds[0][0].shape == (1, 32, 32) and ds.targets == labels.tolist()
    assert len(ds.classes) == 10


def _voc(root) -> str:
    """A tiny VOC2007 layout; returns the id list. Image i has a 'cat' (difficult in
    image 2), image i % 2 == 1 a 'dog', image 3 a 'cow' (not in the classes used)."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(3)
    ids = [f"{i:06d}" for i in range(8)]
    for i, img_id in enumerate(ids):
        _image(rng, i % 2).save(root / "JPEGImages" / f"{img_id}.jpg")
        objects = [("cat", int(i == 2))] + ([("dog", 0)] if i % 2 else []) + [("cow", 0)] * (i == 3)
        body = "".join(
            f"<object><name>{n}</name><difficult>{d}</difficult></object>" for n, d in objects
        )
        (root / "Annotations" / f"{img_id}.xml").write_text(f"<annotation>{body}</annotation>")
    ann = root / "ImageSets/Main/trainval.txt"
    ann.write_text("\n".join(ids) + "\n")
    return str(ann)


def test_voc_multi_label_trains_with_mmcls_metrics(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2007"
    ann = _voc(root)
    train = dict(type="VOC", data_prefix=str(root), ann_file=ann, pipeline=TRAIN, classes=CLASSES)
    val = dict(train, pipeline=TEST, test_mode=True)
    metrics = ["mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"]
    loss = dict(type="CrossEntropyLoss", use_sigmoid=True)
    runner, trained, (evaluated,) = _train(tmp_path, train, val, metric=metrics, loss=loss)
    assert len(trained) == 1 and np.isfinite(trained[0]["loss"])
    assert all(k in evaluated for k in metrics)
    targets = torch.stack(runner.data_loaders["val"].dataset.targets)
    assert targets[2].tolist() == [-1.0, 0.0]  # difficult only: -1 (mmcls's default)
    assert targets[1].tolist() == [1.0, 1.0] and targets[0].tolist() == [1.0, 0.0]
    positive = DATASETS.build(dict(val, type="VOC", difficult_as_postive=True))
    assert positive.targets[2].tolist() == [1.0, 0.0]


def test_sigmoid_cross_entropy_is_mmcls_multilabel_loss():
    from acchooks.models.losses import CrossEntropyLoss

    logits, target = torch.randn(4, 3), torch.tensor([[1.0, -1.0, 0.0]] * 4)
    got = CrossEntropyLoss(use_sigmoid=True)(logits, target)
    want = (
        torch.nn.functional.binary_cross_entropy_with_logits(logits, target.abs(), reduction="sum")
        / 4
    )
    assert torch.allclose(got, want)


# ------------------------------------------------------------------ pipeline mapping
def _same(a, b, image, seed=0):
    out = []
    for t in (a, b):
        random.seed(seed)
        torch.manual_seed(seed)
        np.random.seed(seed)
        out.append(t(image))
    return torch.equal(*out)


@pytest.mark.parametrize(
    "pipeline, timm_args",
    [
        (TRAIN, dict(is_training=True, input_size=16, hflip=0.5, color_jitter=None)),
        (TEST, dict(input_size=16, crop_pct=16 / 20)),
        (
            TRAIN[:3]
            + [
                dict(
                    type="RandAugment",
                    policies=[
                        dict(type=t)
                        for t in (
                            "AutoContrast",
                            "Equalize",
                            "Invert",
                            "Rotate",
                            "SolarizeAdd",
                            "Shear",
                            "Translate",
                        )
                    ]
                    + [
                        dict(type="Shear", direction="vertical"),
                        dict(type="Translate", direction="vertical"),
                        dict(type="Posterize", magnitude_range=(4, 0)),
                        dict(type="Solarize", magnitude_range=(256, 0)),
                    ]
                    + [
                        dict(type=t, magnitude_range=(0, 0.9))
                        for t in ("ColorTransform", "Contrast", "Brightness", "Sharpness")
                    ],
                    num_policies=2,
                    magnitude_level=9,
                    magnitude_std=0.5,
                    total_level=10,
                    hparams=dict(pad_val=[104, 116, 124], interpolation="bilinear"),  # BGR
                ),  # fmt: skip
                NORM,
                dict(type="RandomErasing", erase_prob=0.25, mode="rand"),
            ],
            dict(
                is_training=True,
                input_size=16,
                hflip=0.5,
                color_jitter=None,
                auto_augment="rand-m9-n2-mstd0.5-inc1",
                re_prob=0.25,
                re_mode="pixel",
            ),  # fmt: skip
        ),
    ],
)
def test_pipeline_equals_the_timm_transform(tree, pipeline, timm_args):
    from acchooks.datasets.pipeline import build_pipeline, timm_arguments

    mean, std = tuple(m / 255 for m in MEAN), tuple(s / 255 for s in STD)
    want = create_transform(**timm_args, mean=mean, std=std)
    assert timm_arguments(pipeline) is not None  # built by create_transform itself
    got = build_pipeline(pipeline)
    image = Image.open(tree / "train" / "cat" / "0.png").convert("RGB")
    for seed in range(4):
        assert _same(got, want, image, seed), seed


def test_pipeline_in_another_order_is_composed_from_torchvision(tree):
    from torchvision import transforms as T

    from acchooks.datasets.pipeline import build_pipeline, timm_arguments

    pipeline = [
        dict(type="Resize", size=20, interpolation="bicubic"),  # an int: a 20x20 square
        dict(type="RandomFlip", flip_prob=1.0, direction="vertical"),
        dict(type="ColorJitter", brightness=0.4, contrast=0.4, saturation=0.4),
        dict(type="CenterCrop", crop_size=(12, 16)),
        NORM,
    ]
    assert timm_arguments(pipeline) is None
    want = T.Compose([
        T.Resize((20, 20), T.InterpolationMode.BICUBIC), T.RandomVerticalFlip(1.0),
        T.ColorJitter(0.4, 0.4, 0.4), T.CenterCrop((12, 16)), T.ToTensor(),
        T.Normalize([m / 255 for m in MEAN], [s / 255 for s in STD]),
    ])  # fmt: skip
    image = Image.open(tree / "train" / "dog" / "1.png").convert("RGB")
    got = build_pipeline(pipeline)
    assert _same(got, want, image) and got(image).shape == (3, 12, 16)


@pytest.mark.parametrize(
    "step, message",
    [
        (
            dict(type="Lighting", eigval=[1], eigvec=[[1]]),
            "transform 'Lighting' has no equivalent in acchooks; use ColorJitter",
        ),  # fmt: skip
        (dict(type="RandomFlp"), "did you mean 'RandomFlip'"),
        (
            dict(type="Resize", size=8, interp="bicubic"),
            "unexpected argument 'interp'; did you mean 'interpolation'",
        ),  # fmt: skip
        (dict(type="CenterCrop", crop_size=8, efficientnet_style=True), "efficientnet_style"),
        (dict(type="LoadImageFromFile", color_type="grayscale"), "only 'color' is supported"),
        (dict(type="AutoAugment", policies=[[dict(type="Rotate")]]), "timm's AutoAugment"),
    ],
)
def test_unmapped_transform_is_refused_by_name(tree, step, message):
    cfg = tiny_config(
        tree / "unused",
        data=dict(train=dict(type="CustomDataset", data_prefix=str(tree / "train"),
                             pipeline=[step], _delete_=True)),
    )  # fmt: skip
    from acchooks.config.schema import check_or_raise

    with pytest.raises(ConfigError) as e:
        check_or_raise(cfg, "cfg.py")
    assert "data.train.pipeline[0]" in str(e.value) and message in str(e.value), str(e.value)


# ------------------------------------------------------------------ bad data
def test_missing_cifar_and_mnist_files_are_one_error(tmp_path):
    for name, expect in [
        ("CIFAR10", ["cifar-10-batches-py", "data_batch_1", "test_batch", "cifar-10-python.tar.gz"]),
        ("MNIST", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "gunzip"]),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as e:
            DATASETS.build(dict(type=name, data_prefix=str(tmp_path)))
        assert len(e.value.problems) == 1 and "never downloads" in str(e.value)
        assert all(x in str(e.value) for x in expect + [str(tmp_path)]), str(e.value)


def test_cifar_with_foreign_checksums_is_not_unpickled(tmp_path):
    import torchvision

    tv = torchvision.datasets.CIFAR10
    folder = tmp_path / tv.base_folder
    folder.mkdir()
    for f, _ in tv.train_list + tv.test_list + [[tv.meta["filename"], ""]]:
        (folder / f).write_bytes(b"not the official file")
    with pytest.raises(ConfigError, match=r"data_batch_1.*do not match the official archive"):
        DATASETS.build(dict(type="CIFAR10", data_prefix=str(tmp_path)))


@pytest.mark.parametrize(
    "lines, message",
    [
        ("cat/0.png 0\ncat/9.png 0\n", "line 2: 'cat/9.png 0': image not found"),
        ("cat/0.png 0\n\ndog/0.png 2\n", "line 3: 'dog/0.png 2': label 2 out of range for 2"),
        (
            "cat/0.png cat\ndog/0.png dgo\n",
            "line 2: 'dog/0.png dgo': class 'dgo' is not in `classes`; did you mean 'dog'?",
        ),  # fmt: skip
        ("cat/0.png\n", "line 1: 'cat/0.png': expected '<path> <label>'"),
    ],
)
def test_bad_annotation_line_is_a_config_error(tree, tmp_path, lines, message):
    from acchooks.config.schema import check_or_raise

    ann = tmp_path / "ann.txt"
    ann.write_text(lines)
    ds = dict(type="CustomDataset", data_prefix=str(tree / "train"), ann_file=str(ann),
              classes=CLASSES, _delete_=True)  # fmt: skip
    with pytest.raises(ConfigError) as e:
        check_or_raise(tiny_config(tmp_path, data=dict(train=ds)), "cfg.py")
    assert f"data.train.ann_file: {ann} {message}" in str(e.value), str(e.value)


def test_bad_voc_ids_classes_file_and_sizes_are_config_errors(tmp_path):
    root = tmp_path / "VOC2007"
    ann = _voc(root)
    (root / "Annotations" / "000003.xml").unlink()
    (root / "Annotations" / "000005.xml").write_text("<annotation><object>")
    problems = DATASETS.get("VOC").check_config(dict(data_prefix=str(root), ann_file=ann), "v")
    assert problems[0].startswith(f"v.ann_file: {ann} line 4: '000003': not found: ")
    assert problems[1].startswith(f"v.ann_file: {ann} line 6: '000005': cannot parse ")
    missing = tmp_path / "classes.txt"
    cfg = dict(data_prefix=str(root), classes=str(missing), pipeline=[dict(type="Resize", size=0)])
    problems = DATASETS.get("CustomDataset").check_config(cfg, "d")
    assert problems[0].startswith("d.pipeline[0] (Resize).size: expected a positive int")
    (problem,) = DATASETS.get("CustomDataset").check_config(dict(cfg, pipeline=[]), "d")
    assert problem.startswith(
        f"d.classes: classes file (one class name per line) not found: {missing}"
    )
    with pytest.raises(ConfigError, match="CustomDataset.classes: classes file"):
        DATASETS.build(dict(cfg, type="CustomDataset", pipeline=[]))


def _corrupt_tree(tmp_path):
    rng = np.random.default_rng(4)
    for label, name in enumerate(CLASSES):
        (tmp_path / name).mkdir()
        for i in range(3):
            _image(rng, label).save(tmp_path / name / f"{i}.png")
    bad = tmp_path / "cat" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    return bad


def test_corrupt_image_names_file_and_index(tmp_path):
    bad = _corrupt_tree(tmp_path)
    ds = DATASETS.build(dict(type="CustomDataset", data_prefix=str(tmp_path), pipeline=[NORM]))
    ds[0]
    with pytest.raises(DataError) as e:
        ds[1]
    assert f"cannot read sample 1 of {tmp_path}: {bad}" in str(e.value)
    assert "skip_corrupt=True" in str(e.value)


def test_skip_corrupt_replaces_with_the_next_sample_and_counts(tmp_path):
    import logging

    _corrupt_tree(tmp_path)
    ds = DATASETS.build(
        dict(type="CustomDataset", data_prefix=str(tmp_path), pipeline=[NORM], skip_corrupt=True)
    )
    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda r: records.append(r.getMessage())
    logger = logging.getLogger("acchooks")
    logger.addHandler(handler)
    try:
        img, label = ds[1]
        again, _ = ds[1]
    finally:
        logger.removeHandler(handler)
    assert torch.equal(img, ds[2][0]) and torch.equal(again, img) and label == 0
    assert ds.corrupt_skipped == 1  # decoded once: known-bad indices are not re-read
    (message,) = records
    assert "skipped sample 1" in message and "1 corrupt sample(s) skipped so far" in message
