"""MMClassification 0.x pipeline transforms: their arguments and torchvision/timm pieces.

Each supported ``dict(type=..., ...)`` of an mmcls ``pipeline=[...]`` list is declared
here once: its arguments with mmcls's defaults, the values acchooks cannot honour, and
the torchvision/timm transforms it becomes. :mod:`acchooks.datasets.pipeline` checks a
list against these declarations and composes the pieces (or one ``create_transform``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from timm.data.auto_augment import auto_augment_transform, rand_augment_transform
from timm.data.random_erasing import RandomErasing
from timm.data.transforms import RandomResizedCropAndInterpolation, str_to_interp_mode
from torchvision import transforms as T

REQUIRED = object()
# mmcls's format/loading steps: the dataset loads the image and collates the sample
NO_OPS = ("LoadImageFromFile", "ImageToTensor", "ToTensor", "Collect", "ToPIL", "ToNumpy")
NO_OPS += ("Transpose",)
# mmcv's interpolation names on PIL: cv2's 'area' is PIL's box filter
_INTERP = {"nearest", "bilinear", "bicubic", "area", "box", "lanczos", "hamming"}
_RESIZE = dict(interpolation="bilinear", backend="cv2")

ARGS: dict[str, dict[str, Any]] = {
    "LoadImageFromFile": dict(to_float32=False, color_type="color", file_client_args=None),
    "ImageToTensor": dict(keys=None),
    "ToTensor": dict(keys=None),
    "Collect": dict(keys=None, meta_keys=None),
    "ToPIL": {},
    "ToNumpy": {},
    "Transpose": dict(keys=None, order=None),
    "RandomResizedCrop": dict(
        size=REQUIRED,
        scale=(0.08, 1.0),
        ratio=(3.0 / 4.0, 4.0 / 3.0),
        max_attempts=10,
        efficientnet_style=False,
        min_covered=0.1,
        crop_padding=32,
        **_RESIZE,
    ),  # fmt: skip
    "RandomCrop": dict(
        size=REQUIRED, padding=None, pad_if_needed=False, pad_val=0, padding_mode="constant"
    ),
    "RandomFlip": dict(flip_prob=0.5, direction="horizontal"),
    "RandomGrayscale": dict(gray_prob=0.1),
    "ColorJitter": dict(brightness=REQUIRED, contrast=REQUIRED, saturation=REQUIRED),
    "RandAugment": dict(
        policies=REQUIRED,
        num_policies=REQUIRED,
        magnitude_level=REQUIRED,
        magnitude_std=0.0,
        total_level=30,
        hparams=None,
    ),  # fmt: skip
    "AutoAugment": dict(policies=REQUIRED, hparams=None),
    "Resize": dict(size=REQUIRED, adaptive_side="short", **_RESIZE),
    "CenterCrop": dict(crop_size=REQUIRED, efficientnet_style=False, crop_padding=32, **_RESIZE),
    "Normalize": dict(mean=REQUIRED, std=REQUIRED, to_rgb=True),
    "RandomErasing": dict(
        erase_prob=0.5,
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        aspect_range=(0.3, 1 / 0.3),
        mode="const",
        fill_color=(128, 128, 128),
        fill_std=None,
    ),  # fmt: skip
}
# mmcls transforms without a mapping, and what to use instead
SUGGEST = {
    "Lighting": "ColorJitter (timm's color_jitter)",
    "Albu": "the torchvision/timm transforms listed here, or ImageFolder's create_transform options",
    "Pad": "RandomCrop with padding=",
    "Cutout": "RandomErasing (timm's re_prob)",
    "EfficientNetRandomCrop": "RandomResizedCrop",
    "EfficientNetCenterCrop": "Resize(size=(s, -1)) + CenterCrop (timm's crop_pct = crop/s)",
}
_RAND_OPS = {  # mmcls RandAugment policy type -> timm op (increasing variant, if any)
    "AutoContrast": ("AutoContrast", None),
    "Equalize": ("Equalize", None),
    "Invert": ("Invert", None),
    "Rotate": ("Rotate", None),
    "Posterize": ("Posterize", "PosterizeIncreasing"),
    "Solarize": ("Solarize", "SolarizeIncreasing"),
    "SolarizeAdd": ("SolarizeAdd", None),
    "ColorTransform": ("Color", "ColorIncreasing"),
    "Contrast": ("Contrast", "ContrastIncreasing"),
    "Brightness": ("Brightness", "BrightnessIncreasing"),
    "Sharpness": ("Sharpness", "SharpnessIncreasing"),
    "Shear": ("Shear", None),  # direction: ShearX/ShearY (rand_ops)
    "Translate": ("Translate", None),  # direction: TranslateXRel/TranslateYRel
}


def value_problems(name: str, args: Mapping[str, Any], path: str) -> list[str]:
    """Values of a declared transform's arguments that acchooks cannot honour."""
    problems = [
        f"{path}.{key}: expected a positive int or an (h, w) pair of them"
        + (" (w may be -1: keep the aspect ratio)" if name == "Resize" else "")
        + f", got {args[key]!r}"
        for key in ("size", "crop_size")
        if key in args and not _size_ok(args[key], name == "Resize")
    ]
    if "interpolation" in args and args["interpolation"] not in _INTERP:
        problems.append(
            f"{path}.interpolation: {args['interpolation']!r} is not one of "
            f"{', '.join(sorted(_INTERP))}"
        )
    if args.get("backend", "cv2") not in ("cv2", "pillow"):
        problems.append(f"{path}.backend: expected 'cv2' or 'pillow', got {args['backend']!r}")
    if args.get("efficientnet_style"):
        problems.append(
            f"{path}.efficientnet_style: not supported; use {SUGGEST['EfficientNetCenterCrop']}"
            if name == "CenterCrop"
            else f"{path}.efficientnet_style: not supported; use the plain {name}"
        )
    if name == "LoadImageFromFile" and args.get("color_type", "color") != "color":
        problems.append(
            f"{path}.color_type: only 'color' is supported (images are read as RGB); "
            "for greyscale input convert the images, or use MNIST's greyscale arrays"
        )
    if name == "RandomFlip" and args.get("direction") not in ("horizontal", "vertical"):
        problems.append(f"{path}.direction: expected 'horizontal' or 'vertical'")
    if name == "Resize" and args.get("adaptive_side", "short") != "short":
        problems.append(
            f"{path}.adaptive_side: only 'short' is supported; give size=(h, w) for a fixed size"
        )
    if name == "RandomErasing" and args.get("mode", "const") not in ("const", "rand"):
        problems.append(f"{path}.mode: expected 'const' or 'rand'")
    if name == "AutoAugment" and not isinstance(args.get("policies"), str):
        problems.append(
            f"{path}.policies: give the name of one of timm's AutoAugment policies "
            "('original' is the ImageNet policy of the AutoAugment paper, which "
            "MMClassification's policies/imagenet reproduces; 'v0', 'originalr', 'v0r', '3a') "
            "or use RandAugment with a policies list"
        )
    if name == "RandAugment":
        problems += [f"{path}.policies: {p}" for p in _policy_problems(args.get("policies"))]
    return problems


def _size_ok(size: Any, adaptive: bool) -> bool:
    def positive(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if positive(size):
        return True
    pair = isinstance(size, (list, tuple)) and len(size) == 2
    return pair and positive(size[0]) and (positive(size[1]) or (adaptive and size[1] == -1))


def interpolation(args: Mapping[str, Any]) -> str:
    """timm's name for a transform's ``interpolation``."""
    name = args.get("interpolation", "bilinear")
    return "box" if name == "area" else name


def size_hw(size: Any) -> tuple[int, int]:
    """mmcls's ``size``: an int is a square, a pair is ``(h, w)``."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _policy_problems(policies: Any) -> list[str]:
    if not isinstance(policies, (list, tuple)) or not policies:
        return ["expected a list of dict(type=...) policies"]
    bad = [p.get("type") if isinstance(p, Mapping) else p for p in policies]
    bad = [t for t in bad if t not in _RAND_OPS]
    return [f"unsupported policy {t!r} (supported: {', '.join(_RAND_OPS)})" for t in bad]


def rand_ops(policies: list[Mapping[str, Any]]) -> list[str]:
    """timm op names for mmcls RandAugment policies (a decreasing range, e.g.
    Posterize's bits (4, 0), is timm's 'Increasing' variant)."""
    ops = []
    for p in policies:
        plain, increasing = _RAND_OPS[p["type"]]
        lo, hi = p.get("magnitude_range", (0, 1))[:2] if "magnitude_range" in p else (0, 1)
        if plain in ("Shear", "Translate"):
            axis = "Y" if p.get("direction") == "vertical" else "X"
            plain = f"Shear{axis}" if plain == "Shear" else f"Translate{axis}Rel"
        decreasing = plain in ("Posterize", "Solarize") and lo > hi
        growing = plain not in ("Posterize", "Solarize") and increasing and lo == 0
        ops.append(increasing if decreasing or growing else plain)
    return ops


def rand_config(args: Mapping[str, Any]) -> str:
    """timm's ``rand-m..-n..-mstd..`` string: mmcls's level out of ``total_level`` is
    timm's magnitude out of 10 (rounded: timm's magnitude is an integer)."""
    scale = 10.0 / args.get("total_level", 30)
    m = round(args["magnitude_level"] * scale)
    std = args.get("magnitude_std", 0.0) * scale
    return f"rand-m{m}-n{args['num_policies']}-mstd{std:g}"


def aug_hparams(args: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
    """timm's hparams for a RandAugment/AutoAugment step (as create_transform sets them).
    mmcls's ``hparams.pad_val`` is in the order of mmcls's image: BGR for files (reversed
    here, acchooks' images are RGB), RGB for CIFAR's arrays."""
    hp = dict(translate_const=int(ctx["size"] * 0.45))
    hp["img_mean"] = tuple(round(255 * x) for x in ctx["mean"])
    given = args.get("hparams") or {}
    if "pad_val" in given:
        pad = given["pad_val"]
        pad = tuple(pad) if isinstance(pad, (list, tuple)) else (pad,) * 3
        hp["img_mean"] = pad[::-1] if ctx["loaded_bgr"] else pad
    hp["interpolation"] = str_to_interp_mode(interpolation(given))
    return hp


class SwapRB:
    """Reverse the channel order of a CxHxW tensor (RGB <-> BGR), for mmcls's
    ``Normalize(to_rgb=...)`` where the model expects the other order."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return img.flip(0) if img.shape[0] == 3 else img

    def __repr__(self) -> str:
        return "SwapRB()"


class ToFloat255:
    """PIL image to a float CxHxW tensor in [0, 255]: mmcls's ImageToTensor without a
    Normalize step."""

    def __call__(self, img: Any) -> torch.Tensor:
        return T.functional.pil_to_tensor(img).float()

    def __repr__(self) -> str:
        return "ToFloat255()"


def _rrc(a: Mapping[str, Any], ctx: Mapping[str, Any]) -> list:
    return [
        RandomResizedCropAndInterpolation(
            size_hw(a["size"]), tuple(a["scale"]), tuple(a["ratio"]), interpolation(a)
        )
    ]


def _crop(a: Mapping[str, Any], ctx: Mapping[str, Any]) -> list:
    mode = a["padding_mode"]
    return [T.RandomCrop(a["size"], a["padding"], a["pad_if_needed"], a["pad_val"], mode)]


def _flip(a: Mapping[str, Any], ctx: Mapping[str, Any]) -> list:
    flip = T.RandomHorizontalFlip if a["direction"] == "horizontal" else T.RandomVerticalFlip
    return [flip(a["flip_prob"])]


def _rand(a: Mapping[str, Any], ctx: Mapping[str, Any]) -> list:
    hp = aug_hparams(a, ctx)
    return [rand_augment_transform(rand_config(a), hp, transforms=rand_ops(a["policies"]))]


def _resize(a: Mapping[str, Any], ctx: Mapping[str, Any]) -> list:
    size = a["size"]
    if isinstance(size, (list, tuple)) and size[1] == -1:
        size = int(size[0])  # the short side
    elif isinstance(size, int):
        size = (size, size)  # mmcls: an int is a square, not the short side
    return [T.Resize(size, str_to_interp_mode(interpolation(a)))]


def _normalize(a: Mapping[str, Any], ctx: Mapping[str, Any]) -> list:
    pieces: list = [T.ToTensor()]
    if ctx["loaded_bgr"] != bool(a["to_rgb"]):  # mmcls's model would see BGR
        pieces.append(SwapRB())
    mean, std = (tuple(x / 255.0 for x in a[k]) for k in ("mean", "std"))
    return pieces + [T.Normalize(mean, std)]


def _erasing(a: Mapping[str, Any], ctx: Mapping[str, Any]) -> list:
    mode = "pixel" if a["mode"] == "rand" else "const"
    lo, hi = a["aspect_range"]
    return [
        RandomErasing(
            a["erase_prob"], a["min_area_ratio"], a["max_area_ratio"], lo, hi, mode, device="cpu"
        )
    ]


BUILDERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list]] = {
    "RandomResizedCrop": _rrc,
    "RandomCrop": _crop,
    "RandomFlip": _flip,
    "RandomGrayscale": lambda a, ctx: [T.RandomGrayscale(a["gray_prob"])],
    "ColorJitter": lambda a, ctx: [T.ColorJitter(a["brightness"], a["contrast"], a["saturation"])],
    "RandAugment": _rand,
    "AutoAugment": lambda a, ctx: [auto_augment_transform(a["policies"], aug_hparams(a, ctx))],
    "Resize": _resize,
    "CenterCrop": lambda a, ctx: [T.CenterCrop(size_hw(a["crop_size"]))],
    "Normalize": _normalize,
    "RandomErasing": _erasing,
}
