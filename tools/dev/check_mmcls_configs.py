"""Run MMClassification 0.x's own configs through acchooks: config check and ``--dry-run``.

Each config is loaded as written; its ``model`` and ``data`` are swapped for timm's tiny
``test_resnet`` and generated Shapes images (keeping ``model.train_cfg``, which configs
use for batch mixing; multi-label configs get ``MultiLabelShapes`` and a BCE loss,
``RepeatAugSampler`` ones enough images for an epoch), everything else is kept. Then acchooks' config check runs, and
with ``--dry-run`` the dry run (two train and two val iterations, a checkpoint saved and
reloaded, all in a temporary directory). Prints one line per refused config and the
counts by reason. Needs no network: get the configs once with

    pip download mmcls==0.25.0 --no-deps -d /tmp/mmcls
    cd /tmp/mmcls && unzip -q mmcls-0.25.0-py2.py3-none-any.whl -d x

    python tools/dev/check_mmcls_configs.py /tmp/mmcls/x/mmcls/.mim/configs [--dry-run]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from acchooks.config import Config  # noqa: E402
from acchooks.errors import ConfigError  # noqa: E402
from acchooks.testing import TINY  # noqa: E402

DEFAULT_DIR = "/tmp/mmcls/x/mmcls/.mim/configs"


def config_files(folder: str) -> list[str]:
    """Every runnable config (not under ``_base_``), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "_base_")
        found += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
    return sorted(found)


def swapped(cfg: Config, work_dir: str) -> Config:
    """``cfg`` with its model and data replaced by tiny ones (``model.train_cfg`` kept)."""
    model = dict(TINY["model"])
    train_cfg = (cfg.get("model") or {}).get("train_cfg")
    if train_cfg is not None:  # batch mixing follows the swapped model's classes
        augments = train_cfg.get("augments")
        for aug in augments if isinstance(augments, list) else [augments] if augments else []:
            if isinstance(aug, dict) and "num_classes" in aug:
                aug["num_classes"] = model["num_classes"]
        model["train_cfg"] = train_cfg
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY["data"].items()}
    data["samples_per_gpu"] = 4
    if _multi_label(cfg):  # VOC-style: multi-hot targets (some difficult) and a BCE loss
        import acchooks.testing.multilabel  # noqa: F401 - registers MultiLabelShapes

        model["loss"] = dict(type="BinaryCrossEntropy")
        for split in ("train", "val"):
            data[split] = dict(data[split], type="MultiLabelShapes", difficult=0.1)
    sampler = cfg.get("sampler")
    if isinstance(sampler, dict) and sampler.get("type") == "RepeatAugSampler":
        # one full epoch: the sampler rounds the epoch down to selected_round samples
        rounded = sampler.get("selected_round", 256) or 0
        data["train"]["num_samples"] = max(data["train"]["num_samples"], rounded)
    data["test"] = dict(data["val"])
    cfg.model = model
    cfg.data = data
    cfg.work_dir = work_dir
    for key in ("load_from", "resume_from"):
        cfg.pop(key, None)
    return cfg


def _multi_label(cfg: Config) -> bool:
    """Whether the config evaluates with MMClassification's multi-label metrics."""
    from acchooks.evaluation.multilabel import MULTILABEL_METRICS

    metric = (cfg.get("evaluation") or {}).get("metric", "accuracy")
    return any(m in MULTILABEL_METRICS for m in ([metric] if isinstance(metric, str) else metric))


def _reason(text: str) -> str:
    """A reason without file names and numbers, to count configs by it."""
    text = re.sub(r"/\S+\.py", "<file>", text)
    text = re.sub(r"in config <file>:\n\s*- ", "", text)
    return re.sub(r"\d+(\.\d+)?", "N", text.strip().splitlines()[-1] if text.strip() else text)


def check_one(path: str, dry_run: bool, tmp: str) -> tuple[str, str, list[str]]:
    """('ok' | 'load' | 'check' | 'dry-run', reason, warnings) for one config."""
    from acchooks.config.schema import check_or_raise

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cfg = Config.fromfile(path)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            return "load", f"{type(e).__name__}: {e}", []
    noted = [str(w.message) for w in caught]
    cfg = swapped(cfg, os.path.join(tmp, "work"))
    try:
        noted += check_or_raise(cfg, path)
    except ConfigError as e:
        return "check", str(e), noted
    except Exception as e:  # noqa: BLE001 - a crash of the check itself
        return "check-crash", f"{type(e).__name__}: {e}", noted
    if not dry_run:
        return "ok", "", noted
    from accelerate.state import AcceleratorState, GradientState

    from acchooks.cli.dry_run import dry_run as run_dry

    # one process, many runs: each config gets the fresh Accelerate state a new process has
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = run_dry(cfg, [], "dev", True)
    if rc != 0:
        lines = [ln for ln in err.getvalue().splitlines() if "dry run FAILED" in ln]
        return "dry-run", lines[-1] if lines else err.getvalue()[-500:], noted
    return "ok", "", noted


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", nargs="?", default=DEFAULT_DIR, help="MMClassification configs/")
    p.add_argument("--dry-run", action="store_true", help="also run acchooks' --dry-run")
    p.add_argument("--match", default="", help="only configs whose path contains this")
    p.add_argument("--warnings", action="store_true", help="print each config's warnings")
    args = p.parse_args(argv)
    if not os.path.isdir(args.folder):
        print(f"no such folder: {args.folder} (see this script's docstring)", file=sys.stderr)
        return 2
    logging.getLogger("acchooks").setLevel(logging.ERROR)
    files = [f for f in config_files(args.folder) if args.match in f]
    outcomes: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    t0 = time.perf_counter()
    for path in files:
        with tempfile.TemporaryDirectory() as tmp:
            outcome, reason, noted = check_one(path, args.dry_run, tmp)
        outcomes[outcome] += 1
        rel = os.path.relpath(path, args.folder)
        if outcome != "ok":
            reasons[f"{outcome}: {_reason(reason)}"] += 1
            print(f"REFUSED [{outcome}] {rel}: {reason.strip().splitlines()[-1]}")
        if args.warnings:
            for w in noted:
                print(f"  warning {rel}: {w}")
    print(f"\n{len(files)} configs in {time.perf_counter() - t0:.0f} s: {dict(outcomes)}")
    for reason, n in reasons.most_common():
        print(f"{n:4d}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
