"""``acchooks plot-curves LOG.json [LOG2.json ...] --keys loss accuracy_top-1 --out curves.png``

mmcls's ``analyze_logs.py plot_curve`` for our JSON logs: one panel per key, one line
per log (runs overlaid). Train values are plotted against the global train iteration,
val values (metrics from EvalHook, the loss of a val phase) against the epoch (against
the iteration for iteration-based runs). For an epoch-based run the global iteration is
``(epoch - 1) * epoch_length + iter``; the epoch length is read from the run's text log
next to the JSON log (``<timestamp>.log``), else taken as the largest logged ``iter``, as
mmcls does.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from . import ToolError
from .json_log import JsonLog, describe_keys, load_json_log


def _mode_of(log: JsonLog, key: str, mode: str | None) -> str:
    if mode is not None:
        if key not in log.keys(mode):
            raise ToolError(
                f"{log.path}: no {mode} record has key '{key}'; keys present: {describe_keys(log)}"
            )
        return mode
    for m in ("train", "val"):
        if key in log.keys(m):
            return m
    raise ToolError(f"{log.path}: no record has key '{key}'; keys present: {describe_keys(log)}")


def _number(value: Any, key: str, log: JsonLog) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ToolError(
            f"{log.path}: key '{key}' holds {value!r}, not a number; it cannot be plotted"
        )
    return value


def series_of(log: JsonLog, key: str, mode: str | None = None) -> dict[str, Any]:
    """The points of ``key`` in ``log``: ``{'mode', 'x', 'y', 'x_label'}``."""
    mode = _mode_of(log, key, mode)
    records = [r for r in log.of_mode(mode) if key in r]
    iter_based = log.iter_based()
    if mode == "train":
        if iter_based:
            x = [r["iter"] for r in records]
        else:
            length = log.epoch_length()
            x = [(r["epoch"] - 1) * length + r["iter"] for r in records]
        x_label = "iteration"
    elif iter_based:
        x, x_label = [r["iter"] for r in records], "iteration"
    else:
        x, x_label = [r["epoch"] for r in records], "epoch"
    y = [_number(r[key], key, log) for r in records]
    return {"mode": mode, "x": x, "y": y, "x_label": x_label}


def _run_names(paths: list[str]) -> list[str]:
    """Short distinct names: the work dir's name, else the timestamp, else the path."""
    for name in (
        lambda p: os.path.basename(os.path.dirname(os.path.abspath(p))),
        lambda p: os.path.basename(p).removesuffix(".json").removesuffix(".log"),
    ):
        names = [name(p) for p in paths]
        if len(set(names)) == len(names) and all(names):
            return names
    return list(paths)


def curve_series(
    log_paths: list[str], keys: list[str], mode: str | None = None, legend: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every curve ``plot_curves`` draws: ``{'log', 'key', 'label', 'mode', 'x', 'y',
    'x_label'}``, log-major (for each log, each key), as mmcls orders its legend."""
    logs = [load_json_log(p) for p in log_paths]
    names = _run_names(log_paths)
    if legend is not None and len(legend) not in (len(logs), len(logs) * len(keys)):
        raise ToolError(
            f"--legend: give one name per log ({len(logs)}) or one per log and "
            f"key ({len(logs) * len(keys)}), got {len(legend)}"
        )
    out = []
    for i, log in enumerate(logs):
        for j, key in enumerate(keys):
            if legend is None:
                label = names[i]
            elif len(legend) == len(logs) * len(keys) and len(keys) > 1:
                label = legend[i * len(keys) + j]
            else:
                label = legend[i]
            out.append({"log": log.path, "key": key, "label": label, **series_of(log, key, mode)})
    return out


def plot_curves(
    log_paths: list[str],
    keys: list[str],
    out: str,
    mode: str | None = None,
    legend: list[str] | None = None,
    title: str | None = None,
) -> list[dict[str, Any]]:
    """Draw the curves into the PNG ``out``; returns the plotted series."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = curve_series(log_paths, keys, mode, legend)
    fig = Figure(figsize=(8, 2.2 + 2.8 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys, strict=True):
        curves = [s for s in series if s["key"] == key]
        for s in curves:
            few = len(s["x"]) <= 50
            ax.plot(
                s["x"],
                s["y"],
                label=s["label"],
                linewidth=1.2,
                marker="o" if few else None,
                markersize=3,
            )
        modes = sorted({s["mode"] for s in curves})
        ax.set_title(f"{key} ({'/'.join(modes)})")
        ax.set_xlabel(curves[0]["x_label"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title or ("Training curves: " + ", ".join(_run_names(log_paths))))
    _save(fig, out)
    return series


def _save(fig, out: str) -> None:
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out, dpi=80, format="png")


def dump_json(obj: Any, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "plot-curves",
        help="plot loss / metric curves of one or more JSON logs",
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
        "--keys",
        nargs="+",
        default=["loss"],
        help="logged keys to plot, one panel each (default: loss)",
    )
    p.add_argument(
        "--mode",
        choices=["train", "val"],
        help="records to read the keys from (default: train if the key is logged "
        "in train records, else val)",
    )
    p.add_argument(
        "--legend", nargs="+", help="one name per log, or one per log and key (log-major, as mmcls)"
    )
    p.add_argument("--title", help="figure title")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--json", help="also write the plotted series to this JSON file")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    series = plot_curves(args.json_logs, args.keys, args.out, args.mode, args.legend, args.title)
    if args.json:
        dump_json({"series": series}, args.json)
    for s in series:
        print(f"{s['log']}: {s['key']} ({s['mode']}), {len(s['x'])} points")
    print(f"curves written to {args.out}")
    return 0


__all__ = ["add_parser", "curve_series", "plot_curves", "run", "series_of"]
