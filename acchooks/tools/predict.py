"""``acchooks predict --checkpoint CK --images DIR_OR_FILES [--topk 5] [--out preds.json]``

The top-k classes of each image, by the checkpoint alone: the model is rebuilt from the
model config the checkpoint records, the images go through its recorded eval transform
(timm's ``input_size``, ``mean``, ``std``, ``crop_pct``, ``interpolation``) and the scores
(a softmax; each class's sigmoid for a multi-label checkpoint) are named by its recorded
class names. A checkpoint saved before acchooks
recorded them (or a bare ``.safetensors``) needs ``--config CFG``, the run's config, for
what is missing; the message says which.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..errors import ConfigError
from . import ToolError

_NEEDED = ("model", "eval_transform")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="top-k classes of images, by a checkpoint alone",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint dir, <work_dir>/latest or dir")
    p.add_argument("--images", nargs="+", required=True, help="image files and/or folders")
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--out", help="also write the predictions to this JSON file")
    p.add_argument("--weights", choices=["ema", "raw"], help="as for `acchooks test`")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--config", help="the run's config, for a checkpoint that records no model")
    p.set_defaults(func=run)
    return p


def image_files(inputs: list[str]) -> list[str]:
    """The image files ``inputs`` names (folders searched recursively, sorted)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    files: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(d, f)
                for d, _, names in os.walk(item, followlinks=True)
                for f in names
                if f.lower().endswith(IMG_EXTENSIONS)
            )
            if not found:
                raise ToolError(f"--images: no images in {item} ({', '.join(IMG_EXTENSIONS)})")
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise ToolError(f"--images: not found: {item}; give image files or folders")
    return files


def checkpoint_description(checkpoint: str, config: str | None = None) -> dict[str, Any]:
    """``classes``, ``eval_transform`` and ``model`` of ``checkpoint`` (its manifest's
    ``meta``), with what it lacks taken from ``config``; ToolError naming what is missing."""
    from ..datasets import describe

    meta = describe.checkpoint_meta(checkpoint) or {}
    found = {k: meta.get(k) for k in (*_NEEDED, "classes", describe.MULTI_LABEL)}
    if config is not None and any(found[k] is None for k in _NEEDED):
        from ..config import Config

        cfg = Config.fromfile(config)
        source = describe.eval_source(cfg.get("data") or {})
        found["model"] = found["model"] or describe.model_config(cfg.model)
        found["eval_transform"] = found["eval_transform"] or describe.eval_transform(source)
    missing = [k for k in _NEEDED if found[k] is None]
    if missing:
        why = (
            "it is a weights file, not a checkpoint directory"
            if not meta
            else "it was saved by an acchooks that did not record them"
        )
        raise ToolError(
            f"--checkpoint {checkpoint}: records no {' and no '.join(missing)} "
            f"(meta.{', meta.'.join(missing)}; {why}); give --config CFG, the run's config"
        )
    describe.check_eval_transform(found["eval_transform"], f"{checkpoint}/manifest.json")
    return found


def load_predictor(checkpoint: str, desc: dict[str, Any], weights: str | None = None) -> tuple:
    """``(model in eval mode, transform, phrase naming the weights)``."""
    from ..checkpoint.ema_choice import choose_weights
    from ..checkpoint.weights import load_state_into
    from ..datasets.describe import build_eval_transform
    from ..models import build_model

    model, _ = build_model({**desc["model"], "loss": None})
    state, _, which = choose_weights(checkpoint, weights, "--checkpoint", "--weights")
    load_state_into(model, state, source=checkpoint, what="--checkpoint", strict=True)
    return model.eval(), build_eval_transform(desc["eval_transform"]), which


def predict_images(
    model: Any,
    transform: Any,
    files: list[str],
    topk: int,
    batch_size: int = 32,
    multi_label: bool = False,
) -> list[tuple[list[int], list[float]]]:
    """The top-``topk`` class indices and scores of each file, in order: softmax scores,
    or each class's sigmoid for a multi-label checkpoint."""
    import torch
    from PIL import Image

    from ..evaluation.predict import class_scores

    out: list[tuple[list[int], list[float]]] = []
    k = min(topk, getattr(model, "num_classes", topk) or topk)
    for start in range(0, len(files), batch_size):
        batch = []
        for f in files[start : start + batch_size]:
            try:
                with Image.open(f) as im:
                    batch.append(transform(im.convert("RGB")))
            except Exception as e:  # noqa: BLE001 - whatever PIL raises, the file is at fault
                raise ToolError(f"--images: cannot read {f} ({type(e).__name__}: {e})") from None
        with torch.no_grad():
            scores = class_scores(model(torch.stack(batch)).float(), multi_label)
        values, indices = scores.topk(k, dim=-1)
        out += list(zip(indices.tolist(), values.tolist(), strict=True))
    return out


def run(args: argparse.Namespace) -> int:
    from ..cli.test import resolve_checkpoint

    if args.topk < 1 or args.batch_size < 1:
        raise ToolError("--topk and --batch-size: expected a positive int")
    checkpoint = resolve_checkpoint(args.checkpoint)
    files = image_files(args.images)
    desc = checkpoint_description(checkpoint, args.config)
    try:
        model, transform, which = load_predictor(checkpoint, desc, args.weights)
    except RuntimeError as e:
        raise ConfigError(f"--checkpoint {checkpoint}: {e}") from None
    print(f"predicting with {which}", file=sys.stderr)
    classes = desc["classes"]
    if classes is None:
        print(
            "acchooks predict: note: the checkpoint records no class names; "
            "classes are shown by index",
            file=sys.stderr,
        )
    rows = []
    for f, (idx, scores) in zip(
        files,
        predict_images(
            model, transform, files, args.topk, args.batch_size, bool(desc.get("multi_label"))
        ),
        strict=True,
    ):
        names = [classes[i] if classes and i < len(classes) else str(i) for i in idx]
        rows.append({"image": f, "classes": names, "indices": idx, "scores": scores})
        print(f"{f}: " + ", ".join(f"{n} {s:.4f}" for n, s in zip(names, scores, strict=True)))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(
                {
                    "checkpoint": checkpoint,
                    "weights": which,
                    "topk": args.topk,
                    "classes": classes,
                    "eval_transform": desc["eval_transform"],
                    "predictions": rows,
                },
                fh,
                indent=1,
            )
        print(f"predictions written to {args.out}", file=sys.stderr)
    return 0
