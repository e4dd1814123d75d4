"""MMClassification 0.x's ``CIFAR10``/``CIFAR100``/``MNIST``/``FashionMNIST``, read by
torchvision from a local ``data_prefix`` in their standard formats; never downloaded.

* CIFAR: ``data_prefix/cifar-10-batches-py/`` (or ``cifar-100-python/``) as extracted from
  the official archive. Those batch files are Python pickles: torchvision reads them with
  ``pickle`` (as mmcls does), after its ``check_integrity`` has matched every file's MD5
  against the official archive's, so only the published files are ever unpickled; a file
  with another checksum is refused before loading. (acchooks' own checkpoints never use
  pickle.)
* MNIST / FashionMNIST: the four extracted idx-ubyte files directly in ``data_prefix``
  (mmcls's layout), read by torchvision's idx reader (no pickle).

``test_mode=True`` reads the test split. Images are RGB arrays (CIFAR) or greyscale (MNIST),
so ``Normalize(to_rgb=False)`` keeps CIFAR's RGB order, as in mmcls's CIFAR configs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torchvision
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import mnist
from torchvision.datasets.utils import check_integrity

from ..errors import ConfigError
from ..registry import DATASETS
from .mmcls import common_problems
from .pipeline import build_pipeline

_CIFAR = {"CIFAR10": torchvision.datasets.CIFAR10, "CIFAR100": torchvision.datasets.CIFAR100}
_MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
_MNIST_URLS = {
    "MNIST": torchvision.datasets.MNIST.mirrors[0],
    "FashionMNIST": torchvision.datasets.FashionMNIST.mirrors[0],
}


def _files_problem(name: str, folder: str, expected: list[str], fetch: str, key: str) -> list[str]:
    missing = [f for f in expected if not os.path.isfile(os.path.join(folder, f))]
    if not missing:
        return []
    return [
        f"{key}: {name} files missing in {folder}: {', '.join(missing)} (expected "
        f"{', '.join(expected)}); {fetch}. acchooks reads local files only, it never downloads"
    ]


def _cifar_problems(name: str, prefix: str, key: str) -> list[str]:
    tv = _CIFAR[name]
    files = [f for f, _ in tv.train_list + tv.test_list] + [tv.meta["filename"]]
    fetch = f"download {tv.url} (md5 {tv.tgz_md5}) and run: tar -xzf {tv.filename} -C {prefix}"
    return _files_problem(name, os.path.join(prefix, tv.base_folder), files, fetch, key)


def _mnist_problems(name: str, prefix: str, key: str) -> list[str]:
    fetch = f"download the four .gz files from {_MNIST_URLS[name]} and gunzip them there"
    return _files_problem(name, prefix, _MNIST_FILES, fetch, key)


class ArrayDataset(Dataset):
    """In-memory images ``self.images`` (N, H, W[, 3] uint8) with ``self.targets``,
    transformed by an mmcls pipeline; ``__getitem__`` gives ``(tensor, int label)``."""

    def __init__(
        self,
        data_prefix: str,
        pipeline: Sequence[Mapping[str, Any]] = (),
        classes: Sequence[str] | None = None,
        ann_file: str | None = None,
        test_mode: bool = False,
        file_client_args: dict | None = None,
    ):
        name = type(self).__name__
        problems = self.check_config(dict(data_prefix=data_prefix, pipeline=pipeline), name)
        if problems:
            raise ConfigError(problems)
        prefix = os.path.expanduser(os.fspath(data_prefix))
        self.images, self.targets, default_classes = self._load(prefix, test_mode)
        self.classes = list(classes) if classes is not None else list(default_classes)
        self.data_prefix, self.test_mode = data_prefix, test_mode
        self.transform = build_pipeline(pipeline, loaded_bgr=False, path=name)
        self.CLASSES = self.classes

    def _load(self, prefix: str, test_mode: bool) -> tuple[np.ndarray, list[int], list[str]]:
        """The split's images, labels and the format's class names."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.transform(Image.fromarray(self.images[index])), self.targets[index]

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "dataset") -> list[str]:
        """Keys and pipeline, and that every expected file is in ``data_prefix``."""
        problems = common_problems(cls, cfg, path)
        if problems:
            return problems
        prefix = os.path.expanduser(os.fspath(cfg["data_prefix"]))
        return cls._file_problems(prefix, f"{path}.data_prefix")

    @classmethod
    def _file_problems(cls, prefix: str, key: str) -> list[str]:
        raise NotImplementedError


@DATASETS.register_module()
class CIFAR10(ArrayDataset):
    """CIFAR-10 from ``data_prefix/cifar-10-batches-py`` (torchvision's reader, MD5-checked;
    module docstring)."""

    def _load(self, prefix: str, test_mode: bool) -> tuple[np.ndarray, list[int], list[str]]:
        name = type(self).__name__
        tv = _CIFAR[self._tv_name()]
        try:
            data = tv(prefix, train=not test_mode, download=False)
        except RuntimeError:  # torchvision: "Dataset not found or corrupted"
            folder = os.path.join(prefix, tv.base_folder)
            entries = tv.train_list + tv.test_list + [[tv.meta["filename"], tv.meta["md5"]]]
            bad = [f for f, md5 in entries if not check_integrity(os.path.join(folder, f), md5)]
            raise ConfigError(
                f"{name}.data_prefix: {', '.join(bad)} in {folder} do not match the official "
                f"archive's MD5 checksums, so they are not loaded (CIFAR files are pickles); "
                f"extract them again from {tv.url}"
            ) from None
        return data.data, list(data.targets), list(data.classes)

    @classmethod
    def _tv_name(cls) -> str:
        return next(n for n in ("CIFAR100", "CIFAR10") if issubclass(cls, DATASETS.get(n)))

    @classmethod
    def _file_problems(cls, prefix: str, key: str) -> list[str]:
        return _cifar_problems(cls._tv_name(), prefix, key)


@DATASETS.register_module()
class CIFAR100(CIFAR10):
    """CIFAR-100 (fine labels) from ``data_prefix/cifar-100-python``."""


@DATASETS.register_module()
class MNIST(ArrayDataset):
    """MNIST from the extracted idx-ubyte files in ``data_prefix`` (torchvision's reader)."""

    CLASSES = [
        f"{i} - {w}"
        for i, w in enumerate("zero one two three four five six seven eight nine".split())
    ]  # noqa: E501

    def _load(self, prefix: str, test_mode: bool) -> tuple[np.ndarray, list[int], list[str]]:
        split = "t10k" if test_mode else "train"
        images = mnist.read_image_file(os.path.join(prefix, f"{split}-images-idx3-ubyte"))
        labels = mnist.read_label_file(os.path.join(prefix, f"{split}-labels-idx1-ubyte"))
        targets = [int(t) for t in labels]
        return np.ascontiguousarray(images.numpy()), targets, list(type(self).CLASSES)

    @classmethod
    def _file_problems(cls, prefix: str, key: str) -> list[str]:
        return _mnist_problems(
            cls.__name__ if cls.__name__ in _MNIST_URLS else "MNIST", prefix, key
        )


@DATASETS.register_module()
class FashionMNIST(MNIST):
    """Fashion-MNIST, in MNIST's idx-ubyte format and layout."""

    CLASSES = list(torchvision.datasets.FashionMNIST.classes)
