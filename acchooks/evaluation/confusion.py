"""Confusion matrices of per-sample scores, with the predictions the metrics make.

Single-label: a ``(C, C)`` matrix, row = true class, column = predicted class, the
prediction being :func:`~acchooks.evaluation.metrics.predicted_labels` (the top-1 class,
as precision/recall/F1 take it). Multi-label: ``(C, 2, 2)``, per class
``[[TN, FP], [FN, TP]]`` (scikit-learn's ``multilabel_confusion_matrix`` layout), the
labels predicted as the ``CP``/``CR``/... metrics predict them (``thr`` or the top ``k``,
``thr=0.5`` when neither is given) and difficult labels (-1) counted as negatives, as
those metrics count them.
"""

from __future__ import annotations

import numpy as np
import torch

from .metrics import predicted_labels
from .multilabel import _predicted

NORMALIZE = ("none", "true", "pred")
_CORNER = "true \\ pred"


def confusion_matrix(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """int64 ``(C, C)``: ``[t, p]`` counts the samples of true class t predicted as p."""
    c = scores.size(1)
    pred = predicted_labels(scores)
    true = targets.cpu().long().view(-1)
    return torch.bincount(true * c + pred, minlength=c * c).view(c, c)


def multilabel_confusion(
    scores: torch.Tensor, targets: torch.Tensor, thr: float | None = None, k: int | None = None
) -> torch.Tensor:
    """int64 ``(C, 2, 2)``: per class ``[[TN, FP], [FN, TP]]`` (module docstring)."""
    if thr is None and k is None:
        thr = 0.5
    positive = _predicted(scores.detach().cpu().numpy(), thr, None if thr is not None else k)
    true = targets.detach().cpu().numpy() == 1
    cells = [[~true & ~positive, ~true & positive], [true & ~positive, true & positive]]
    return torch.from_numpy(np.array([[cell.sum(0) for cell in row] for row in cells])).permute(
        2, 0, 1
    )


def normalized(matrix: torch.Tensor, normalize: str = "none") -> torch.Tensor:
    """A ``(C, C)`` matrix as counts (``'none'``), or as fractions of each true class
    (``'true'``: rows sum to 1, the recall on the diagonal) or of each predicted class
    (``'pred'``: columns sum to 1, the precision on the diagonal)."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize: expected one of {NORMALIZE}, got {normalize!r}")
    if normalize == "none":
        return matrix
    dim = 1 if normalize == "true" else 0
    return matrix.double() / matrix.sum(dim=dim, keepdim=True).clamp(min=1)


def format_matrix(matrix: torch.Tensor, classes: list[str]) -> str:
    """A ``(C, C)`` matrix as a text table (rows true, columns predicted)."""
    cells = [[_cell(v) for v in row] for row in matrix.tolist()]
    head = max(len(n) for n in [*classes, _CORNER])
    width = max(len(x) for x in [*classes, *(v for row in cells for v in row)])
    lines = [f"{_CORNER:<{head}} | " + " ".join(f"{n:>{width}}" for n in classes)]
    lines.append("-" * head + "-+-" + "-" * ((width + 1) * len(classes) - 1))
    for name, row in zip(classes, cells, strict=True):
        lines.append(f"{name:<{head}} | " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def format_multilabel(matrix: torch.Tensor, classes: list[str]) -> str:
    """A ``(C, 2, 2)`` matrix as a text table: one row per class, TP FP FN TN."""
    head = max(len(n) for n in [*classes, "class"])
    lines = [f"{'class':<{head}} | {'TP':>6} {'FP':>6} {'FN':>6} {'TN':>6}"]
    lines.append("-" * head + "-+-" + "-" * 27)
    for name, m in zip(classes, matrix.tolist(), strict=True):
        (tn, fp), (fn, tp) = m
        lines.append(f"{name:<{head}} | {tp:>6} {fp:>6} {fn:>6} {tn:>6}")
    return "\n".join(lines)


def _cell(v: float | int) -> str:
    return str(v) if isinstance(v, int) else f"{v:.3f}"
