"""``test.py --config CFG --checkpoint CKPT``: evaluate weights on ``data.test`` (or val).

Works under ``accelerate launch``: every process evaluates its shard and the scores are
gathered once per sample; the main process prints a table and writes JSON."""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from typing import TYPE_CHECKING

from ..config import Config, DictAction
from ..errors import ConfigError, RunError
from .train import EXIT_BAD_INPUT, EXIT_RUN_FAILED, _is_main, load_config, report_bad_input

if TYPE_CHECKING:  # torch and accelerate load only once the input is checked
    from accelerate import Accelerator
    from torch import nn


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    """The command line, plus the training-only attributes load_config reads."""
    p = argparse.ArgumentParser(prog=prog, description="Evaluate a checkpoint with acchooks")
    p.add_argument("--config", required=True)
    p.add_argument(
        "--checkpoint",
        required=True,
        help="our checkpoint directory, a .safetensors file or a .pth (weights only)",
    )
    p.add_argument(
        "--weights",
        choices=["ema", "raw"],
        help="of a checkpoint with an EMAHook: its EMA or its trained (raw) weights "
        "(default: those EvalHook evaluated in that run; raw if it does not say)",
    )
    p.add_argument("--split", choices=["test", "val"], help="default: test if set, else val")
    p.add_argument("--metrics", nargs="+", help="default: the config's evaluation.metric")
    p.add_argument("--out", help="JSON file for the results (default <work_dir>/test_<split>.json)")
    p.add_argument(
        "--out-samples",
        metavar="DIR",
        help="also write each sample's scores, target and id to DIR (samples.safetensors "
        "+ samples.json), for `acchooks metrics` and `acchooks confusion-matrix`",
    )
    p.add_argument("--work-dir")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    args = p.parse_args(argv)
    # load_config reads these training-only flags
    args.seed = args.resume_from = args.resume = args.load_from = None
    args.deterministic = False
    return args


def format_table(results: dict[str, float]) -> str:
    """The results as a two-column text table."""
    width = max(len(k) for k in [*results, "metric"])
    lines = [f"{'metric':<{width}} | value", f"{'-' * width}-+---------"]
    lines += [f"{k:<{width}} | {v:8.4f}" for k, v in results.items()]
    return "\n".join(lines)


def _checked_input(args: argparse.Namespace) -> tuple[Config, str]:
    """The config and the split to evaluate; a ConfigError before anything is built."""
    cfg, _ = load_config(args)
    split = args.split or ("test" if cfg.data.get("test") else "val")
    if not cfg.data.get(split):
        raise ConfigError(f"data.{split}: not set; nothing to evaluate")
    args.checkpoint = resolve_checkpoint(args.checkpoint)
    if args.out_samples and osp.exists(args.out_samples) and not osp.isdir(args.out_samples):
        raise ConfigError(
            f"--out-samples: {args.out_samples} is a file; give a folder (created if missing)"
        )
    return cfg, split


def resolve_checkpoint(path: str) -> str:
    """The checkpoint ``--checkpoint`` names: itself, the one a ``latest`` pointer names,
    or, for a work dir (no manifest, a ``latest`` file), the one its pointer names."""
    from ..checkpoint.format import MANIFEST, CheckpointError
    from ..checkpoint.workdir import LATEST, follow_latest

    if osp.isdir(path) and not osp.exists(osp.join(path, MANIFEST)):
        if osp.isfile(osp.join(path, LATEST)):
            path = osp.join(path, LATEST)
    try:
        target = follow_latest(path)
    except CheckpointError as e:
        raise ConfigError(f"--checkpoint: {e}") from None
    if not osp.exists(target):
        named = f" (named by the pointer {path})" if target != path else ""
        raise ConfigError(
            f"--checkpoint: not found: {target}{named}; give a checkpoint directory, "
            f"<work_dir>/latest, a .safetensors file or a .pth file"
        )
    return target


def _load_checkpoint(
    model: nn.Module, checkpoint: str, accelerator: Accelerator, weights: str | None = None
) -> str | None:
    """Load ``checkpoint`` (its EMA or raw ``weights``, see ``--weights``) into ``model``;
    which were loaded (``'ema'``/``'raw'``), or None (reported by the main process) if
    it cannot be read or does not fit."""
    from ..checkpoint.ema_choice import choose_weights
    from ..checkpoint.weights import load_state_into

    try:
        state, kind, which = choose_weights(checkpoint, weights, "--checkpoint", "--weights")
        if accelerator.is_main_process:
            print(f"evaluating {which}")
        # strict: evaluating other weights would be meaningless
        load_state_into(model, state, source=checkpoint, what="--checkpoint", strict=True)
    except (ConfigError, RuntimeError) as e:
        if accelerator.is_main_process:
            msg = (
                str(e)
                if str(e).startswith(("--checkpoint", "--weights"))
                else f"--checkpoint {checkpoint}: {e}"
            )
            print(f"acchooks: error: {msg}", file=sys.stderr)
        return None
    return kind


def checkpoint_classes(checkpoint: str, dataset: object, split: str) -> list[str] | None:
    """The class names ``checkpoint`` records (None if it does not). Against those of the
    ``data.<split>`` dataset: another number of classes is a ConfigError, other names
    (or another order) a warning on stderr from the main process."""
    from ..datasets.describe import CLASSES, checkpoint_meta, class_difference, dataset_classes

    saved = (checkpoint_meta(checkpoint) or {}).get(CLASSES)
    current = dataset_classes(dataset)
    diff = class_difference(saved, current)
    if diff is None:
        return saved
    text = f"--checkpoint {checkpoint} vs data.{split}: {diff}"
    if len(saved) != len(current):
        raise ConfigError(f"{text}; evaluate it on the classes it was trained for")
    if _is_main():
        print(f"acchooks: warning: {text}; the metrics take label i as the checkpoint's "
              "class i (check the dataset's classes)", file=sys.stderr)  # fmt: skip
    return saved


def _report(args: argparse.Namespace, cfg: Config, split: str, results: dict, n: int) -> None:
    """Print the table and write the JSON results (main process only)."""
    print(f"{args.checkpoint} on data.{split} ({n} samples):")
    print(format_table(results))
    out = args.out or osp.join(cfg.work_dir, f"test_{split}.json")
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(
            {
                "checkpoint": args.checkpoint,
                "weights": args.weights_used,
                "split": split,
                "num_samples": n,
                **results,
            },
            f,
            indent=2,
        )
    print(f"results written to {out}")


def _write_samples(
    args: argparse.Namespace, cfg: Config, split: str, outputs: tuple, results: dict, loader
) -> None:
    """Write ``--out-samples`` (main process only): see evaluation/outputs.py."""
    from ..evaluation.outputs import EvalSamples, class_names, sample_paths

    dataset = loader.dataset.dataset  # the WithIndex wrapper's
    ev = cfg.get("evaluation") or {}
    meta = {
        "config": cfg.filename,
        "checkpoint": args.checkpoint,
        "weights": args.weights_used,
        "split": split,
        "num_samples": len(outputs[2]),
        "classes": class_names(dataset) or args.checkpoint_classes,  # or the checkpoint's
        "metric": [m] if isinstance(m := args.metric_used, str) else list(m),
        "metric_options": dict(ev.get("metric_options") or {}),
        "results": results,
        "ids": {"index": outputs[2].tolist(), "path": sample_paths(dataset)},
    }
    files = EvalSamples(*outputs, meta=meta).save(args.out_samples)
    print(f"per-sample outputs written to {' and '.join(files)}")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``acchooks test``: evaluate a checkpoint; the exit status."""
    args = parse_args(argv, prog)
    try:
        cfg, split = _checked_input(args)
    except ConfigError as e:
        return report_bad_input(e)

    from ..evaluation.metrics import evaluate
    from ..evaluation.outputs import WithIndex, in_dataset_order
    from ..evaluation.predict import predict
    from ..models import build_model
    from ..runner.builder import build_accelerator
    from ..runner.loaders import build_dataloader, shutdown_workers

    accelerator = build_accelerator(cfg)
    model, _ = build_model(cfg.model)
    args.weights_used = _load_checkpoint(model, args.checkpoint, accelerator, args.weights)
    if args.weights_used is None:
        return EXIT_BAD_INPUT
    loader = build_dataloader(cfg.data, split, cfg.get("seed") or 0, train=False, wrap=WithIndex)
    try:
        args.checkpoint_classes = checkpoint_classes(args.checkpoint, loader.dataset, split)
    except ConfigError as e:
        return report_bad_input(e)
    model, loader = accelerator.prepare(model, loader)
    indices: list = []
    try:
        scores, targets = predict(model, loader, accelerator, indices=indices)
        # dataset order whatever the sampler, so the metrics are those of the saved samples
        outputs = in_dataset_order(scores, targets, indices, len(loader.dataset))
    except RunError as e:  # a corrupt image: one message, from the process that read it
        print(f"acchooks: error: {e}", file=sys.stderr)
        return EXIT_RUN_FAILED
    finally:
        shutdown_workers(loader)
    ev = cfg.get("evaluation") or {}
    args.metric_used = args.metrics or ev.get("metric", "accuracy")
    results = evaluate(outputs[0], outputs[1], args.metric_used, ev.get("metric_options"))
    if accelerator.is_main_process:
        _report(args, cfg, split, results, len(targets))
        if args.out_samples:
            _write_samples(args, cfg, split, outputs, results, loader)
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
