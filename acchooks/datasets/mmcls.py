"""MMClassification 0.x's file datasets: ``CustomDataset`` and ``ImageNet``.

Same names and arguments as mmcls 0.25 (``data_prefix``, ``pipeline``, ``classes``,
``ann_file``, ``extensions``, ``test_mode``), plus ``skip_corrupt``. Images are read with
PIL as RGB and transformed by the mapped ``pipeline`` (:mod:`acchooks.datasets.pipeline`);
``__getitem__`` gives ``(CxHxW tensor, int label)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset
from torchvision.datasets.folder import pil_loader

from ..errors import ConfigError, did_you_mean
from ..registry import DATASETS, accepted_arguments
from .annotations import IMG_EXTENSIONS, read_ann_file, read_classes, scan_folders
from .corrupt import CorruptSkipper
from .pipeline import build_pipeline, check_pipeline


def unexpected_keys(cls: type, cfg: Mapping[str, Any], path: str) -> list[str]:
    """Keys of ``cfg`` that ``cls(...)`` does not take, each with a did-you-mean."""
    own = accepted_arguments(cls)[0]
    return [
        f"{path}: unexpected argument '{k}' for {cls.__name__}{did_you_mean(k, own)} "
        f"(accepted: {', '.join(sorted(own))})"
        for k in cfg
        if k not in own and k != "type"
    ]


def common_problems(cls: type, cfg: Mapping[str, Any], path: str) -> list[str]:
    """Unknown keys, a missing ``data_prefix``, the pipeline, ``file_client_args``."""
    problems = unexpected_keys(cls, cfg, path)
    if "data_prefix" not in cfg:
        problems.append(f"{path}.data_prefix: missing (the folder that holds the data)")
    elif not isinstance(cfg["data_prefix"], (str, os.PathLike)):
        problems.append(f"{path}.data_prefix: expected a folder path, got {cfg['data_prefix']!r}")
    problems += check_pipeline(cfg.get("pipeline", ()), f"{path}.pipeline")
    fc = cfg.get("file_client_args")
    if fc is not None and dict(fc).get("backend", "disk") != "disk":
        problems.append(
            f"{path}.file_client_args: only local files are read (backend='disk'); got {dict(fc)!r}"
        )
    return problems


class FileDataset(Dataset):
    """Images on disk listed in ``self.samples`` (``(path, target)``), with an mmcls
    pipeline and the corrupt-file policy of :mod:`acchooks.datasets.corrupt`."""

    CLASSES: Sequence[str] | None = None

    def _setup(self, pipeline: Sequence[Mapping[str, Any]], skip_corrupt: bool) -> None:
        self.transform = build_pipeline(pipeline, loaded_bgr=True, path=type(self).__name__)
        self.corrupt = CorruptSkipper(type(self).__name__, self.data_prefix, skip_corrupt)
        self.targets = [t for _, t in self.samples]

    @property
    def corrupt_skipped(self) -> int:
        """Corrupt samples skipped so far under ``skip_corrupt=True``."""
        return self.corrupt.count

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, used = self.corrupt.load(
            int(index), len(self.samples), lambda i: self.samples[i][0], self._read
        )
        return self.transform(image), self.samples[used][1]

    def _read(self, index: int) -> Any:
        return pil_loader(self.samples[index][0])


def _custom_samples(cls: type, cfg: Mapping[str, Any], path: str) -> tuple[Any, Any, list[str]]:
    """``(samples, classes, problems)`` of a CustomDataset config."""
    classes, problems = read_classes(cfg.get("classes"), cls.CLASSES, f"{path}.classes")
    if problems:
        return [], None, problems
    prefix = os.path.expanduser(os.fspath(cfg["data_prefix"]))
    ann_file = cfg.get("ann_file")
    if ann_file is not None:
        ann = os.path.expanduser(os.fspath(ann_file))
        samples, problems = read_ann_file(ann, prefix, classes, f"{path}.ann_file")
        if classes is None and samples:  # mmcls: CLASSES stays None; name them by index
            classes = [str(i) for i in range(max(t for _, t in samples) + 1)]
        return samples, classes, problems
    exts = cfg.get("extensions", IMG_EXTENSIONS)
    samples, folders, problems = scan_folders(prefix, exts, classes, f"{path}.data_prefix")
    return samples, classes if classes is not None else folders, problems


@DATASETS.register_module()
class CustomDataset(FileDataset):
    """mmcls's CustomDataset: an annotation file of ``<path> <label>`` lines relative to
    ``data_prefix`` (a label may also be a class name from ``classes``), or, when
    ``ann_file`` is None, ``data_prefix/<class>/<image>`` folders (label = sorted folder
    order). ``classes``: a list, a tuple, or a file with one name per line."""

    def __init__(
        self,
        data_prefix: str,
        pipeline: Sequence[Mapping[str, Any]] = (),
        classes: str | Sequence[str] | None = None,
        ann_file: str | None = None,
        extensions: Sequence[str] = IMG_EXTENSIONS,
        test_mode: bool = False,
        file_client_args: dict | None = None,
        skip_corrupt: bool = False,
    ):
        cfg = dict(data_prefix=data_prefix, pipeline=pipeline, classes=classes)
        cfg.update(ann_file=ann_file, extensions=extensions, file_client_args=file_client_args)
        problems = common_problems(type(self), cfg, type(self).__name__)
        samples, names, more = ([], None, []) if problems else _custom_samples(
            type(self), cfg, type(self).__name__
        )  # fmt: skip
        if problems or more:
            raise ConfigError(problems + more)
        self.data_prefix, self.ann_file, self.test_mode = data_prefix, ann_file, test_mode
        self.samples, self.classes = samples, list(names)
        self.CLASSES = self.classes
        # named by index from the labels (mmcls: CLASSES None): ClassNumCheck skips them
        inherited = type(self).CLASSES  # ImageNet's 1000
        self.classes_inferred = ann_file is not None and classes is None and not inherited
        self._setup(pipeline, skip_corrupt)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "dataset") -> list[str]:
        """Problems found without decoding an image: keys, pipeline, classes, every
        annotation line (missing file, label out of range, unknown class) or folder."""
        problems = common_problems(cls, cfg, path)
        if problems:
            return problems
        return _custom_samples(cls, cfg, path)[2]


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in label order (timm's, as mmcls's)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_descriptions())


class _ImageNetClasses:
    def __get__(self, obj: Any, owner: type) -> list[str]:
        return imagenet_classes()


@DATASETS.register_module()
class ImageNet(CustomDataset):
    """mmcls's ImageNet: a CustomDataset whose classes default to ImageNet-1k's 1000.
    Layout: ``train/<wnid>/<image>`` (``ann_file=None``) and a flat ``val/`` with
    ``meta/val.txt`` lines ``<image> <label>``."""

    CLASSES = _ImageNetClasses()
