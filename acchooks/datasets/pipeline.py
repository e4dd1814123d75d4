"""MMClassification 0.x ``pipeline=[...]`` lists as timm/torchvision transforms.

A pipeline that is one of timm's standard pipelines (train: RandomResizedCrop, flips,
one of ColorJitter / RandAugment / AutoAugment, Normalize, RandomErasing; eval: a
short-side Resize, CenterCrop, Normalize) is built by ``timm.data.create_transform``
with the matching arguments (:func:`timm_arguments`); any other list of supported
transforms is composed from torchvision/timm pieces in the given order. Loading and
formatting steps (LoadImageFromFile, ImageToTensor, ToTensor, Collect, ...) are no-ops:
the dataset loads the image and the DataLoader collates. Anything else is refused by
:func:`check_pipeline` with the transform's name and what to use instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, create_transform
from timm.data.auto_augment import _RAND_INCREASING_TRANSFORMS, _RAND_TRANSFORMS
from torchvision import transforms as T

from ..errors import ConfigError, did_you_mean
from . import pipeline_ops as ops

_TRAIN = re.compile(
    r"^RandomResizedCrop( RandomFlip){0,2}( (ColorJitter|RandAugment|AutoAugment))?"
    r" Normalize( RandomErasing)?$"
)
_EVAL = "Resize CenterCrop Normalize"
_ERASING_DEFAULTS = dict(min_area_ratio=0.02, max_area_ratio=1 / 3, aspect_range=(0.3, 1 / 0.3))


def _step_problems(i: int, step: Any, path: str) -> list[str]:
    where = f"{path}[{i}]"
    if not isinstance(step, Mapping) or "type" not in step:
        return [f"{where}: expected dict(type=..., ...), got {step!r}"]
    name = step["type"]
    if name not in ops.ARGS:
        instead = ops.SUGGEST.get(name)
        hint = f"; use {instead}" if instead else did_you_mean(name, ops.ARGS)
        return [
            f"{where}: transform '{name}' has no equivalent in acchooks{hint} "
            f"(supported: {', '.join(ops.ARGS)})"
        ]
    where = f"{where} ({name})"
    declared = ops.ARGS[name]
    problems = [
        f"{where}: unexpected argument '{k}'{did_you_mean(k, declared)} "
        f"(accepted: {', '.join(declared) or 'none'})"
        for k in step
        if k != "type" and k not in declared
    ]
    problems += [
        f"{where}: missing required argument '{k}'"
        for k, v in declared.items()
        if v is ops.REQUIRED and k not in step
    ]
    return problems or ops.value_problems(name, _with_defaults(step), where)


def check_pipeline(pipeline: Any, path: str = "pipeline") -> list[str]:
    """Problems in an mmcls pipeline list, one line each, starting with ``path[i]``."""
    if not isinstance(pipeline, (list, tuple)):
        return [f"{path}: expected a list of dict(type=...) transforms, got {pipeline!r}"]
    problems = [p for i, step in enumerate(pipeline) for p in _step_problems(i, step, path)]
    names = [s.get("type") for s in pipeline if isinstance(s, Mapping)]
    if "RandomErasing" in names and (
        "Normalize" not in names or names.index("RandomErasing") < names.index("Normalize")
    ):
        problems.append(
            f"{path}: RandomErasing works on the normalized tensor: put it after Normalize"
        )
    return problems


def _with_defaults(step: Mapping[str, Any]) -> dict[str, Any]:
    args = {k: v for k, v in ops.ARGS[step["type"]].items() if v is not ops.REQUIRED}
    args.update({k: v for k, v in step.items() if k != "type"})
    return args


def _steps(pipeline: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(s["type"], _with_defaults(s)) for s in pipeline if s["type"] not in ops.NO_OPS]


def _norm(args: Mapping[str, Any]) -> dict[str, tuple[float, ...]]:
    return {k: tuple(x / 255.0 for x in args[k]) for k in ("mean", "std")}


def _timm_train(steps: list[tuple[str, dict[str, Any]]], loaded_bgr: bool) -> dict[str, Any] | None:
    (_, crop), by_name = steps[0], dict(steps)
    kw = dict(is_training=True, input_size=ops.size_hw(crop["size"]), hflip=0.0, vflip=0.0)
    kw.update(scale=tuple(crop["scale"]), ratio=tuple(crop["ratio"]), color_jitter=None)
    kw.update(interpolation=ops.interpolation(crop), **_norm(by_name["Normalize"]))
    for name, a in steps:
        if name == "RandomFlip":
            kw["hflip" if a["direction"] == "horizontal" else "vflip"] = float(a["flip_prob"])
        elif name == "ColorJitter":
            kw["color_jitter"] = (a["brightness"], a["contrast"], a["saturation"])
        elif name in ("RandAugment", "AutoAugment"):
            ctx = dict(mean=kw["mean"], size=min(kw["input_size"]), loaded_bgr=loaded_bgr)
            hp = ops.aug_hparams(a, ctx)
            if hp["interpolation"] != ops.str_to_interp_mode(kw["interpolation"]):
                return None  # timm uses the crop's interpolation
            if hp["img_mean"] != tuple(round(255 * x) for x in kw["mean"]):
                return None  # timm fills with the mean
            kw["auto_augment"] = a["policies"] if name == "AutoAugment" else _rand_string(a)
            if kw["auto_augment"] is None:
                return None
        elif name == "RandomErasing":
            if any(a[k] != v for k, v in _ERASING_DEFAULTS.items()):
                return None
            kw.update(re_prob=a["erase_prob"], re_mode="pixel" if a["mode"] == "rand" else "const")
    return kw


def _rand_string(args: Mapping[str, Any]) -> str | None:
    chosen = ops.rand_ops(args["policies"])
    if sorted(chosen) == sorted(_RAND_INCREASING_TRANSFORMS):
        return ops.rand_config(args) + "-inc1"
    return ops.rand_config(args) if sorted(chosen) == sorted(_RAND_TRANSFORMS) else None


def _timm_eval(steps: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    (_, resize), (_, crop), (_, norm) = steps
    size, (h, w) = resize["size"], ops.size_hw(crop["crop_size"])
    if not (isinstance(size, (list, tuple)) and size[1] == -1 and h == w):
        return None
    crop_pct = h / size[0]
    if math.floor(h / crop_pct) != size[0]:
        return None
    kw = dict(is_training=False, input_size=h, crop_pct=crop_pct)
    return dict(kw, interpolation=ops.interpolation(resize), **_norm(norm))


def timm_arguments(
    pipeline: Sequence[Mapping[str, Any]], loaded_bgr: bool = True
) -> dict[str, Any] | None:
    """``create_transform`` keyword arguments that build exactly this (checked)
    pipeline, or None when it is not one of timm's standard pipelines."""
    steps = _steps(pipeline)
    names = " ".join(n for n, _ in steps)
    norm = dict(steps).get("Normalize")
    if norm is None or len(norm["mean"]) != 3 or loaded_bgr != bool(norm["to_rgb"]):
        return None  # no Normalize, a grey image, or a BGR model: not timm's pipeline
    if _TRAIN.match(names) and len({a.get("direction") for n, a in steps if n == "RandomFlip"}) == (
        names.count("RandomFlip")
    ):
        return _timm_train(steps, loaded_bgr)
    return _timm_eval(steps) if names == _EVAL else None


def _context(steps: list[tuple[str, dict[str, Any]]], loaded_bgr: bool) -> dict[str, Any]:
    norm = dict(steps).get("Normalize")
    mean = _norm(norm)["mean"] if norm is not None else IMAGENET_DEFAULT_MEAN
    sizes = [
        min(ops.size_hw(a.get("size", a.get("crop_size"))))
        for n, a in steps
        if n in ("RandomResizedCrop", "RandomCrop", "CenterCrop")
    ]
    return dict(mean=mean, size=sizes[0] if sizes else 224, loaded_bgr=loaded_bgr)


def build_pipeline(
    pipeline: Sequence[Mapping[str, Any]] | None,
    loaded_bgr: bool = True,
    path: str = "pipeline",
) -> Callable[[Any], Any]:
    """One transform from a PIL image to a tensor for an mmcls ``pipeline`` list.

    ``loaded_bgr``: whether mmcls would have read the image as BGR (files, by OpenCV:
    ``Normalize(to_rgb=True)`` then gives RGB, which is what acchooks loads) or as RGB
    (CIFAR's arrays: ``to_rgb=False`` keeps RGB); the other combination swaps R and B."""
    pipeline = list(pipeline or ())
    problems = check_pipeline(pipeline, path)
    if problems:
        raise ConfigError(problems)
    kwargs = timm_arguments(pipeline, loaded_bgr)
    if kwargs is not None:
        return create_transform(**kwargs)
    steps = _steps(pipeline)
    ctx = _context(steps, loaded_bgr)
    pieces = [p for name, args in steps for p in ops.BUILDERS[name](args, ctx)]
    if "Normalize" not in dict(steps):
        pieces.append(ops.ToFloat255())
    return T.Compose(pieces)
