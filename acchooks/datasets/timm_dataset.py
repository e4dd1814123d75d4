"""``TimmDataset``: a dataset named by ``timm.data.create_dataset``'s readers, with timm's
transforms.

``dict(type='TimmDataset', name='torch/mnist', root='data/mnist', split='train')``: the
name's prefix picks timm's reader: ``torch/<name>`` a torchvision dataset (never
downloaded), ``hfds/<name>`` a Hugging Face dataset (needs the ``datasets`` package): with
``name='hfds/<folder>'`` a local folder that ``datasets.load_dataset`` reads (``save_to_disk``
output, parquet/arrow files, an imagefolder tree), ``root`` the folder where ``datasets``
caches its Arrow copy (timm's reader passes it as ``cache_dir``), class names from the label's
``ClassLabel`` feature; no prefix a folder or tar of images (timm's ``ImageDataset``).
``wds/<anything>``: WebDataset tar shards for training (``root`` a brace pattern, a folder
of tars or one tar; also ``num_samples``, ``shuffle_buffer``), a streamed
:class:`~.webdataset.WdsShards` rather than a TimmDataset. The other streamed readers
(``hfids/``, ``tfds/``) are not supported yet: refused with a clear error.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_dataset, create_transform

from ..errors import ConfigError, did_you_mean
from ..registry import DATASETS, accepted_arguments

_MAP_PREFIXES = ("", "torch", "hfds")
_STREAMED = ("hfids", "tfds")
_OWN = {"name", "root", "split", "input_size", "is_training", "mean", "std"}
_OWN |= {"crop_pct", "interpolation", "class_map", "dataset_kwargs", "type"}


def _prefix(name: str) -> str:
    prefix, sep, _ = name.partition("/")
    return prefix.lower() if sep else ""


def _hfds_problems(name: str, path: str) -> list[str]:
    """``hfds/``: the ``datasets`` package; a local path (``/``, ``.``) that exists and is not
    one ``Dataset.save_to_disk`` (``load_dataset`` refuses it; a ``DatasetDict``'s is read)."""
    if importlib.util.find_spec("datasets") is None:
        return [f"{path}.name: '{name}' needs the 'datasets' package (pip install datasets)"]
    local = name.partition("/")[2]
    if local.startswith(("/", ".")) and not os.path.isdir(local):
        return [f"{path}.name: '{name}': local Hugging Face dataset folder not found: {local}"]
    if os.path.isfile(os.path.join(local, "state.json")):
        return [
            f"{path}.name: '{name}' is one Dataset's save_to_disk folder, which "
            "datasets.load_dataset does not read; save the splits as a DatasetDict instead: "
            "DatasetDict(train=ds).save_to_disk(folder)"
        ]
    return []


def _create_dataset(name: str, root: str, split: str, **kwargs: Any) -> Any:
    """``create_dataset``; for ``hfds/``, ``datasets``' errors (an unknown split, a name that is
    neither a local dataset folder nor in the cache ``root``) become a ConfigError."""
    if _prefix(name) != "hfds":
        return create_dataset(name, root=root, split=split, **kwargs)
    try:
        return create_dataset(name, root=root, split=split, **kwargs)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"TimmDataset: '{name}' (split '{split}', cache root {root}): {e} (a local dataset "
            "folder: save_to_disk, parquet/arrow files or an imagefolder tree; never downloaded)"
        ) from e


@DATASETS.register_module()
class TimmDataset:
    """A map-style dataset from ``timm.data.create_dataset(name, root, split=...)`` with
    ``timm.data.create_transform``; extra keyword arguments go to ``create_transform``,
    ``dataset_kwargs`` to the reader. ``.classes`` where the reader has them. A ``wds/``
    name gives a :class:`~.webdataset.WdsShards` instead."""

    def __new__(cls, name: str = "", *args: Any, **kwargs: Any) -> Any:
        if isinstance(name, str) and _prefix(name) == "wds":
            return _wds_shards(name, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        name: str,
        root: str,
        split: str = "train",
        input_size: int | tuple[int, ...] = 224,
        is_training: bool = False,
        mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
        std: tuple[float, ...] = IMAGENET_DEFAULT_STD,
        crop_pct: float | None = None,
        interpolation: str = "bilinear",
        class_map: str | dict | None = None,
        dataset_kwargs: dict | None = None,
        **transform_kwargs: Any,
    ) -> None:
        cfg = dict(name=name, root=root, **transform_kwargs)
        problems = self.check_config(cfg, path="TimmDataset")
        if problems:
            raise ConfigError(problems)
        self.dataset = _create_dataset(
            name,
            root=os.fspath(root),
            split=split,
            class_map=class_map,
            is_training=is_training,
            download=False,
            **(dataset_kwargs or {}),
        )
        self.dataset.transform = create_transform(
            input_size,
            is_training=is_training,
            mean=mean,
            std=std,
            crop_pct=crop_pct,
            interpolation=interpolation,
            **transform_kwargs,
        )
        self.name, self.is_training = name, is_training
        reader = getattr(self.dataset, "reader", None)
        if hasattr(self.dataset, "classes"):
            self.classes = list(self.dataset.classes)
        elif getattr(reader, "class_to_idx", None):
            order = sorted(reader.class_to_idx.items(), key=lambda kv: kv[1])
            self.classes = [str(c) for c, _ in order]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, target = self.dataset[index]
        return image, int(target)

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "dataset") -> list[str]:
        """Problems found without reading data: the arguments, the name's reader, the root."""
        allowed = (accepted_arguments(create_transform)[0] - {"is_training"}) | _OWN
        wds = isinstance(cfg.get("name"), str) and _prefix(cfg["name"]) == "wds"
        if wds:
            from .webdataset import _OWN as wds_own

            allowed |= wds_own
        problems = [
            f"{path}: unexpected argument '{k}' for TimmDataset{did_you_mean(k, sorted(allowed))}"
            for k in cfg
            if k not in allowed
        ]
        name, root = cfg.get("name"), cfg.get("root")
        if not isinstance(name, str):
            return problems + [
                f"{path}.name: expected a timm dataset name such as "
                f"'torch/mnist', 'hfds/<name>' or '' (a folder), found {name!r}"
            ]
        prefix = _prefix(name)
        if prefix in _STREAMED:
            problems.append(
                f"{path}.name: '{name}': timm's streamed readers ({', '.join(_STREAMED)}) are "
                "not supported by TimmDataset yet; use a folder ('') or 'torch/...' name"
            )
        elif prefix not in _MAP_PREFIXES and not wds:
            problems.append(
                f"{path}.name: unknown reader prefix '{prefix}/' in '{name}' (expected one of "
                f"torch/, hfds/, or no prefix for a folder){did_you_mean(prefix, _MAP_PREFIXES)}"
            )
        elif prefix == "hfds":
            problems += _hfds_problems(name, path)
        if wds:
            from .webdataset import WdsShards

            problems += WdsShards.check_config(cfg, path)
        elif not isinstance(root, (str, os.PathLike)):
            problems.append(f"{path}.root: expected the data folder (a path), found {root!r}")
        elif not os.path.exists(root):
            problems.append(
                f"{path}.root: not found: {os.fspath(root)} (check the path; relative paths "
                f"start from {os.getcwd()}; datasets are never downloaded at run time)"
            )
        return problems


def _wds_shards(
    name: str,
    root: str,
    split: str = "train",
    input_size: int | tuple[int, ...] = 224,
    is_training: bool = False,
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD,
    crop_pct: float | None = None,
    interpolation: str = "bilinear",
    num_samples: int | None = None,
    shuffle_buffer: int = 1000,
    class_map: Any = None,
    dataset_kwargs: Any = None,
    **transform_kwargs: Any,
) -> Any:
    """``TimmDataset(name='wds/...')``: WebDataset shards with timm's transforms."""
    from .webdataset import WdsShards

    cfg = dict(name=name, root=root, num_samples=num_samples, shuffle_buffer=shuffle_buffer)
    cfg.update(class_map=class_map, dataset_kwargs=dataset_kwargs)
    problems = TimmDataset.check_config({**cfg, **transform_kwargs}, path="TimmDataset")
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
    return WdsShards(name, root, split, num_samples, shuffle_buffer, transform)
