"""``acchooks analyze-time LOG.json [LOG2.json ...] [--include-outliers]``

mmcls's ``analyze_logs.py cal_train_time``: from the ``time`` of the train records
(seconds per iteration, averaged over the log interval), per log: the slowest and the
fastest epoch by their average, the standard deviation of the epoch averages, and the
average iteration time. The first record of every epoch (data loader start-up, first
kernels) is left out unless ``--include-outliers``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from . import ToolError
from .json_log import load_json_log


def train_time(log_path: str, include_outliers: bool = False) -> dict[str, Any]:
    """The numbers ``analyze-time`` prints for one log (``epochs``: epoch -> its
    average, over the records used)."""
    log = load_json_log(log_path)
    per_epoch: dict[int, list[float]] = {}
    for r in log.of_mode("train"):
        if isinstance(r.get("time"), (int, float)) and not isinstance(r.get("time"), bool):
            per_epoch.setdefault(r["epoch"], []).append(float(r["time"]))
    if not per_epoch:
        raise ToolError(
            f"{log_path}: no train record has 'time' (is IterTimerHook running "
            f"and the log interval shorter than an epoch?)"
        )
    used = {e: t if include_outliers else t[1:] for e, t in per_epoch.items()}
    used = {e: t for e, t in used.items() if t}
    if not used:
        raise ToolError(
            f"{log_path}: every epoch has a single train record, which is left out "
            f"as an outlier; log more often (log_config.interval) or pass "
            f"--include-outliers"
        )
    epochs = sorted(used)
    means = np.array([np.mean(used[e]) for e in epochs])
    slow, fast = int(means.argmax()), int(means.argmin())
    return {
        "log": log_path,
        "include_outliers": include_outliers,
        "epochs": {e: float(m) for e, m in zip(epochs, means, strict=True)},
        "slowest_epoch": epochs[slow],
        "slowest_time": float(means[slow]),
        "fastest_epoch": epochs[fast],
        "fastest_time": float(means[fast]),
        "std_over_epochs": float(means.std()),
        "average_iter_time": float(np.mean(np.concatenate([used[e] for e in epochs]))),
    }


def format_report(res: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{'-' * 5}Analyze train time of {res['log']}{'-' * 5}",
            f"slowest epoch {res['slowest_epoch']}, average time is {res['slowest_time']:.4f}",
            f"fastest epoch {res['fastest_epoch']}, average time is {res['fastest_time']:.4f}",
            f"time std over epochs is {res['std_over_epochs']:.4f}",
            f"average iter time: {res['average_iter_time']:.4f} s/iter",
        ]
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "analyze-time",
        help="iteration time per epoch of JSON logs (mmcls cal_train_time)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "json_logs",
        nargs="+",
        metavar="LOG.json",
        help="<work_dir>/<timestamp>.log.json files written by TextLoggerHook",
    )
    p.add_argument(
        "--include-outliers", action="store_true", help="also use the first record of every epoch"
    )
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    results = [train_time(p, args.include_outliers) for p in args.json_logs]
    for res in results:
        print(format_report(res))
        print()
    if args.json:
        from .plot_curves import dump_json

        dump_json(results, args.json)
    return 0
