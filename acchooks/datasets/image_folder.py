"""``ImageFolder``: ``root/<class>/<image>`` folders with timm's transforms."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torchvision
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..config.checks import instance_of
from ..errors import ConfigError, DataError, did_you_mean
from ..registry import DATASETS, accepted_arguments

_LAYOUT = "expected one sub-folder per class holding its images: <root>/<class>/<image>.jpg"
# Arguments of timm's create_transform that ImageFolder sets itself or that make no sense here.
_OWN_ARGS = {"input_size", "is_training", "mean", "std", "crop_pct", "interpolation"}
_ROOT = instance_of(str, os.PathLike).named("a folder path")


def _has_image(folder: str) -> bool:
    """Whether ``folder`` holds an image anywhere below it (stops at the first one)."""
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(IMG_EXTENSIONS) for f in files):
            return True
    return False


def _transform_arguments() -> set[str]:
    names, _ = accepted_arguments(create_transform)
    return names - _OWN_ARGS


@DATASETS.register_module()
class ImageFolder(torchvision.datasets.ImageFolder):
    """torchvision's ImageFolder with ``timm.data.create_transform``.

    Extra keyword arguments (``auto_augment``, ``re_prob``, ``hflip``, ``color_jitter``,
    ``scale``, ...) go to ``create_transform``. ``.classes`` and ``.targets`` are
    torchvision's (classes sorted by folder name).
    """

    def __init__(
        self,
        root: str,
        input_size: int | tuple[int, ...] = 224,
        is_training: bool = False,
        mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
        std: tuple[float, ...] = IMAGENET_DEFAULT_STD,
        crop_pct: float | None = None,
        interpolation: str = "bilinear",
        **transform_kwargs: Any,
    ):
        cfg = dict(root=root, **transform_kwargs)
        problems = self.check_config(cfg, path="ImageFolder")
        if problems:
            raise ConfigError(problems)
        transform = create_transform(
            input_size,
            is_training=is_training,
            mean=mean,
            std=std,
            crop_pct=crop_pct,
            interpolation=interpolation,
            **transform_kwargs,
        )
        super().__init__(os.fspath(root), transform=transform)
        self.input_size, self.is_training = input_size, is_training

    def __getitem__(self, index: int) -> tuple[Any, int]:
        """The transformed image and class of sample ``index``; a file that cannot be
        read (corrupt, truncated, not an image) is a DataError naming it and ``index``."""
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except Exception as e:  # noqa: BLE001 - whatever PIL raises, the file is at fault
            raise DataError(
                f"ImageFolder: cannot read sample {index} of {self.root}: {path} "
                f"({type(e).__name__}: {e}); replace or delete that file"
            ) from None
        if self.target_transform is not None:  # torchvision's argument, if a subclass sets it
            target = self.target_transform(target)
        return self.transform(image), target

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "dataset") -> list[str]:
        """Problems in an ImageFolder config, found without opening any image.

        Checks that ``root`` exists and has class folders with images, and that extra
        keyword arguments are ``create_transform`` arguments. Each line starts with ``path``.
        """
        problems = []
        allowed = _transform_arguments()
        own = accepted_arguments(cls)[0] | {"type"}
        for key in cfg:
            if key not in own and key not in allowed:
                problems.append(
                    f"{path}: unexpected argument '{key}' for ImageFolder"
                    f"{did_you_mean(key, sorted(own | allowed))}"
                )
        if "root" not in cfg:
            return problems + [f"{path}.root: missing; {_LAYOUT}"]
        message = _ROOT.problem(cfg["root"], f"{path}.root")
        if message is not None:
            return problems + [message]
        root = os.fspath(cfg["root"])
        if not os.path.isdir(root):
            hint = (
                "it is a file, not a folder"
                if os.path.exists(root)
                else f"check the path (relative paths start from {os.getcwd()})"
            )
            return problems + [f"{path}.root: data folder not found: {root} ({hint}); {_LAYOUT}"]
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        if not classes:
            return problems + [f"{path}.root: no class folders in {root}; {_LAYOUT}"]
        empty = [c for c in classes if not _has_image(os.path.join(root, c))]
        if empty:
            shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
            problems.append(
                f"{path}.root: class folder(s) without images in {root}: {shown} "
                f"(image extensions: {', '.join(IMG_EXTENSIONS)}); {_LAYOUT}"
            )
        return problems
