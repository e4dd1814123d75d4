"""What a checkpoint records about its data, so it describes itself: the training set's
class names, the eval transform (timm's data config: ``input_size``, ``mean``, ``std``,
``crop_pct``, ``interpolation``; or an MMClassification ``pipeline`` that is not one of
timm's) and the model config; and MMClassification's ClassNumCheck (the head matches
the dataset's classes).

:func:`describe_run` gives the manifest ``meta`` fields (``classes``, ``eval_transform``,
``model``); :func:`build_eval_transform` rebuilds the transform from ``eval_transform``.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError

# The meta fields this module writes.
CLASSES, EVAL_TRANSFORM, MODEL = "classes", "eval_transform", "model"
MULTI_LABEL = "multi_label"
TIMM_KEYS = ("input_size", "mean", "std", "crop_pct", "interpolation")
_TIMM_TYPES = ("ImageFolder", "TimmDataset")


def _class_holder(dataset: Any) -> tuple[Any, list[str] | None]:
    """The dataset (inside wrappers that keep it as ``.dataset``: SeededDataset,
    WithIndex, ...) that names classes, and its names (``classes`` or mmcls's ``CLASSES``)."""
    for _ in range(8):
        own = getattr(dataset, "__dict__", {})
        names = own.get("classes") or own.get("CLASSES") or getattr(type(dataset), "CLASSES", None)
        if names:
            return dataset, [str(n) for n in names]
        if own.get("dataset") is None:
            break
        dataset = own["dataset"]
    return None, None


def dataset_classes(dataset: Any) -> list[str] | None:
    """The class names of ``dataset``, looking through its wrappers (or None)."""
    return _class_holder(dataset)[1]


def _defaults(cls_name: str) -> dict[str, Any]:
    from ..registry import DATASETS

    sig = inspect.signature(DATASETS.get(cls_name).__init__)
    return {k: p.default for k, p in sig.parameters.items() if k in TIMM_KEYS}


def _timm_config(args: Mapping[str, Any]) -> dict[str, Any]:
    """timm's data config (``resolve_data_config``'s keys) of create_transform arguments."""
    from timm.data import DEFAULT_CROP_PCT  # lazily: the config check imports no timm

    size = args["input_size"]
    if isinstance(size, int):
        size = (3, size, size)
    elif len(size) == 2:
        size = (3, *size)
    crop = args.get("crop_pct")
    return {
        "input_size": [int(s) for s in size],
        "mean": [float(m) for m in args["mean"]],
        "std": [float(s) for s in args["std"]],
        "crop_pct": float(DEFAULT_CROP_PCT if crop is None else crop),
        "interpolation": str(args.get("interpolation") or "bilinear"),
    }


def eval_transform(ds_cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The eval transform of a dataset config (None if it cannot be told from it)."""
    if not isinstance(ds_cfg, Mapping):
        return None
    kind = ds_cfg.get("type")
    if kind in _TIMM_TYPES:
        return _timm_config({**_defaults(kind), **{k: ds_cfg[k] for k in TIMM_KEYS if k in ds_cfg}})
    if kind == "Shapes":
        size = int(ds_cfg.get("img_size", 32))  # x/255 - mean / std: resize and crop are no-ops
        return _timm_config(
            {
                "input_size": size,
                "mean": ds_cfg.get("mean", (0.5, 0.5, 0.5)),
                "std": ds_cfg.get("std", (0.5, 0.5, 0.5)),
                "crop_pct": 1.0,
            }
        )
    if "pipeline" in ds_cfg:
        from .pipeline import timm_arguments

        bgr = kind not in ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST")
        pipeline = [dict(step) for step in ds_cfg["pipeline"] or ()]
        kwargs = timm_arguments(pipeline, loaded_bgr=bgr)
        if kwargs is not None and not kwargs.get("is_training"):
            return _timm_config(kwargs)
        return _jsonable({"pipeline": pipeline, "loaded_bgr": bgr})
    return None


def _jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data, or None if it holds anything else."""
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError):
        return None


def model_config(model_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model config a predictor rebuilds the model from: without the loss, batch
    mixing and ``init_cfg`` (the checkpoint's weights replace them), never pretrained."""
    cfg = {k: v for k, v in dict(model_cfg).items() if k not in ("loss", "train_cfg", "init_cfg")}
    if "pretrained" in cfg:
        cfg["pretrained"] = False
    return _jsonable(cfg)


def describe_run(cfg: Any, train_dataset: Any) -> dict[str, Any]:
    """The ``meta`` fields of every checkpoint of a run: ``classes`` (of the train set),
    ``eval_transform`` (of ``data.val``, else ``data.test``, else the train set's as it
    would be without augmentation) and ``model``."""
    return {
        CLASSES: dataset_classes(train_dataset),
        EVAL_TRANSFORM: eval_transform(eval_source(cfg.get("data") or {})),
        MODEL: model_config(cfg.model),
        MULTI_LABEL: is_multi_label(train_dataset),
    }


def eval_source(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The dataset config whose transform evaluates: ``data.val``, else ``data.test``,
    else the train set's without augmentation."""
    source = data.get("val") or data.get("test")
    if source is None and isinstance(data.get("train"), Mapping):
        source = {**data["train"], "is_training": False}
    return source


def is_multi_label(dataset: Any) -> bool:
    """Whether ``dataset`` (inside its wrappers) gives multi-hot targets: its class says
    ``multi_label = True`` (mmcls's MultiLabelDataset: VOC)."""
    for _ in range(8):
        if getattr(type(dataset), "multi_label", False):
            return True
        dataset = getattr(dataset, "__dict__", {}).get("dataset")
        if dataset is None:
            return False
    return False


def head_size(model: Any) -> int | None:
    """The number of outputs of the model's classifier (timm's ``num_classes``)."""
    inner = getattr(model, "module", model)  # DDP
    n = getattr(inner, "num_classes", None)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def check_num_classes(model: Any, dataset: Any, split: str = "train") -> None:
    """MMClassification's ClassNumCheckHook: a ConfigError when the model's head size
    differs from the number of classes the ``data.<split>`` dataset declares."""
    holder, classes = _class_holder(dataset)
    n, inferred = head_size(model), getattr(holder, "classes_inferred", False)
    if n is None or classes is None or inferred or n == len(classes):
        return
    shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
    raise ConfigError(
        f"model.num_classes: the model's head has {n} outputs but data.{split} has "
        f"{len(classes)} classes ({shown}); set model.num_classes={len(classes)} "
        f"(or give the dataset the {n} classes the head is for)"
    )


def class_difference(saved: list[str] | None, current: list[str] | None) -> str | None:
    """How the checkpoint's class names differ from the dataset's, or None if they
    agree (or one side does not say)."""
    if saved is None or current is None or list(saved) == list(current):
        return None
    if len(saved) != len(current):
        return f"the checkpoint has {len(saved)} classes, the dataset {len(current)}"
    diffs = [
        f"{i}: {a!r} vs {b!r}"
        for i, (a, b) in enumerate(zip(saved, current, strict=True))
        if a != b
    ]
    more = f" and {len(diffs) - 5} more" if len(diffs) > 5 else ""
    return "class names differ (index: checkpoint vs dataset) " + "; ".join(diffs[:5]) + more


def checkpoint_meta(path: str) -> dict[str, Any] | None:
    """The manifest ``meta`` of our checkpoint directory ``path`` (sizes verified), or
    None for a weights file or a folder without a manifest."""
    import os

    from ..checkpoint.format import MANIFEST
    from ..checkpoint.reader import verify_checkpoint

    if not os.path.isfile(os.path.join(path, MANIFEST)):
        return None
    return verify_checkpoint(path, verify="size").get("meta", {})


def warn_class_mismatch(
    source: Any, dataset: Any, what: str, logger: logging.Logger | None = None
) -> None:
    """Log a warning when the checkpoint ``source`` (a path or a ``load_from`` dict)
    records class names other than ``dataset``'s."""
    from ..checkpoint.workdir import follow_latest

    path = source.get("checkpoint") if isinstance(source, Mapping) else source
    if not isinstance(path, str):
        return
    meta = checkpoint_meta(follow_latest(path))
    diff = class_difference((meta or {}).get(CLASSES), dataset_classes(dataset))
    if diff is not None:
        (logger or logging.getLogger("acchooks")).warning(
            f"{what} {path}: {diff}; the loaded head predicts the checkpoint's classes "
            "(check data.train's classes, or train the head anew)"
        )


def build_eval_transform(desc: Mapping[str, Any]) -> Callable[[Any], Any]:
    """The transform (a PIL image to a tensor) an ``eval_transform`` record describes."""
    if "pipeline" in desc:
        from .pipeline import build_pipeline

        return build_pipeline(desc["pipeline"], loaded_bgr=bool(desc.get("loaded_bgr", True)))
    from timm.data import create_transform

    return create_transform(**{k: desc[k] for k in TIMM_KEYS}, is_training=False)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_eval_transform(desc: Any, file: str) -> None:
    """The fields of a recorded ``eval_transform``, in the manifest schema's message style."""
    from ..checkpoint.schema import fail

    field = f"meta.{EVAL_TRANSFORM}"
    if not isinstance(desc, dict):
        raise fail(file, field, "a mapping", desc)
    if "pipeline" in desc:
        steps = desc["pipeline"]
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise fail(file, f"{field}.pipeline", "a list of mappings", steps)
        return
    size = desc.get("input_size")
    if not (isinstance(size, list) and len(size) == 3 and all(_is_pos_int(s) for s in size)):
        raise fail(file, f"{field}.input_size", "a list of 3 positive ints (C, H, W)", size)
    for key in ("mean", "std"):
        v = desc.get(key)
        if not (isinstance(v, list) and len(v) == size[0] and all(_is_num(x) for x in v)):
            raise fail(file, f"{field}.{key}", f"a list of {size[0]} numbers", v)
    if not (_is_num(desc.get("crop_pct")) and desc["crop_pct"] > 0):
        raise fail(file, f"{field}.crop_pct", "a positive number", desc.get("crop_pct"))
    if not isinstance(desc.get("interpolation"), str):
        raise fail(file, f"{field}.interpolation", "a string", desc.get("interpolation"))


def _is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0
