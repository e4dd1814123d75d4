"""``acchooks confusion-matrix --results DIR [--out cm.png] [--csv cm.csv] [--normalize true]``

The confusion matrix of the per-sample outputs ``acchooks test --out-samples DIR``
wrote, printed as a text table, and optionally drawn to a PNG (matplotlib) and written
as CSV. Single-label: rows are the true classes, columns the predicted (top-1) classes;
``--normalize true`` divides each row by its class's samples (the recall on the
diagonal), ``--normalize pred`` each column by its predictions (the precision).
Multi-label: per class TP, FP, FN, TN, the labels predicted as the ``CP``/``CR``/...
metrics of that test run predicted them (its ``thr`` or ``k``; ``--thr`` / ``--k``
override; ``thr=0.5`` when neither is set) and difficult labels counted as negatives
(see ``acchooks.evaluation.confusion``).
"""

from __future__ import annotations

import argparse
import csv
import os
from typing import Any

import torch

from . import ToolError


def confusion_of(
    samples: Any, thr: float | None = None, k: int | None = None, normalize: str = "none"
) -> torch.Tensor:
    """The confusion matrix of ``samples`` (an :class:`~acchooks.evaluation.outputs.
    EvalSamples`): ``(C, C)`` single-label, ``(C, 2, 2)`` multi-label."""
    from ..evaluation.confusion import confusion_matrix, multilabel_confusion, normalized

    if samples.multi_label:
        if normalize != "none":
            raise ToolError("--normalize: only for single-label results (these are multi-label)")
        options = samples.meta.get("metric_options") or {}
        if thr is None and k is None:
            thr, k = options.get("thr"), options.get("k")
        return multilabel_confusion(samples.scores, samples.targets, thr, k)
    if thr is not None or k is not None:
        raise ToolError("--thr / --k: only for multi-label results (these are single-label)")
    return normalized(confusion_matrix(samples.scores, samples.targets), normalize)


def write_csv(matrix: torch.Tensor, classes: list[str], path: str) -> None:
    """``matrix`` as CSV: a header row of predicted classes (single-label) or
    ``class,TP,FP,FN,TN`` (multi-label), then one row per (true) class."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        if matrix.dim() == 3:
            out.writerow(["class", "TP", "FP", "FN", "TN"])
            for name, ((tn, fp), (fn, tp)) in zip(classes, matrix.tolist(), strict=True):
                out.writerow([name, tp, fp, fn, tn])
            return
        out.writerow(["true \\ pred", *classes])
        for name, row in zip(classes, matrix.tolist(), strict=True):
            out.writerow([name, *row])


def plot_matrix(matrix: torch.Tensor, classes: list[str], out: str, title: str) -> None:
    """Draw ``matrix`` to the PNG ``out``: a heat map of the ``(C, C)`` matrix, or one
    2x2 panel per class of a multi-label ``(C, 2, 2)`` one."""
    from matplotlib.figure import Figure

    panels = list(matrix) if matrix.dim() == 3 else [matrix]
    cols = min(len(panels), 4)
    rows = -(-len(panels) // cols)
    size = (2.6 * cols, 2.6 * rows + 0.6) if matrix.dim() == 3 else (1.6 + 0.6 * len(classes),) * 2
    fig = Figure(figsize=(max(size[0], 4), max(size[1], 3.5)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i >= len(panels):
            ax.set_axis_off()
            continue
        m = panels[i].double()
        ax.imshow(m.numpy(), cmap="Blues", vmin=0)
        labels = ["neg", "pos"] if matrix.dim() == 3 else classes
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 2 else 0)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if matrix.dim() == 3:
            ax.set_title(classes[i], fontsize="medium")
        top = m.max().item() or 1.0
        for (r, c), v in zip(_cells(m), panels[i].flatten().tolist(), strict=True):
            text = str(v) if isinstance(v, int) else f"{v:.2f}"
            color = "white" if m[r, c] > top / 2 else "black"
            ax.text(c, r, text, ha="center", va="center", color=color, fontsize="small")
    fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=80, format="png")


def _cells(m: torch.Tensor) -> list[tuple[int, int]]:
    return [(r, c) for r in range(m.size(0)) for c in range(m.size(1))]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``acchooks confusion-matrix``."""
    p = subparsers.add_parser(
        "confusion-matrix",
        help="the confusion matrix of the per-sample outputs of acchooks test --out-samples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--results", required=True, metavar="DIR", help="acchooks test --out-samples")
    p.add_argument("--out", help="PNG file to draw the matrix to")
    p.add_argument("--csv", help="CSV file to write the matrix to")
    p.add_argument("--normalize", choices=["none", "true", "pred"], default="none")
    p.add_argument("--thr", type=float, help="multi-label: predict the labels scored >= thr")
    p.add_argument("--k", type=int, help="multi-label: predict each sample's k best labels")
    p.add_argument("--title", help="figure title")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``acchooks confusion-matrix``: print the matrix; draw / write it where asked."""
    from ..evaluation.confusion import format_matrix, format_multilabel
    from ..evaluation.outputs import load_samples

    if args.k is not None and args.k < 1:
        raise ToolError(f"--k: expected a positive int, got {args.k}")
    samples = load_samples(args.results)
    matrix = confusion_of(samples, args.thr, args.k, args.normalize)
    classes = samples.classes
    print(
        format_multilabel(matrix, classes) if matrix.dim() == 3 else format_matrix(matrix, classes)
    )
    if args.csv:
        write_csv(matrix, classes, args.csv)
        print(f"CSV written to {args.csv}")
    if args.out:
        meta = samples.meta
        title = args.title or (
            f"{os.path.basename(str(meta.get('checkpoint')))} on data.{meta.get('split')} "
            f"({len(samples.indices)} samples)"
        )
        plot_matrix(matrix, classes, args.out, title)
        print(f"confusion matrix drawn to {args.out}")
    return 0


__all__ = ["add_parser", "confusion_of", "plot_matrix", "run", "write_csv"]
