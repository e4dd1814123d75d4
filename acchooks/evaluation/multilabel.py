"""MMClassification's multi-label metrics: ``mAP``, ``CP``, ``CR``, ``CF1``, ``OP``,
``OR``, ``OF1`` (percent), as mmcls 0.25's ``mAP`` and ``average_performance``.

Targets are multi-hot, ``(N, C)`` like the scores: 1 positive, 0 negative, -1
"difficult". As in mmcls, ``mAP`` leaves difficult labels out of the ranking's
precision, while the C*/O* metrics count them as negatives (mmcls sets them to 0).
Scores are per-class probabilities (EvalHook gives sigmoid scores for multi-hot
targets, as mmcls's multi-label heads).

``metric_options``: ``thr`` (a label is predicted when its score is >= thr) or ``k``
(the k best-scored labels of each sample are predicted); neither gives ``thr=0.5``
(mmcls's dataset default), both use ``thr`` with mmcls's warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..config.checks import is_number
from ..registry import METRICS

PERFORMANCE_KEYS = ("CP", "CR", "CF1", "OP", "OR", "OF1")
MULTILABEL_METRICS = ("mAP", *PERFORMANCE_KEYS)
_EPS = float(np.finfo(np.float32).eps)  # a Python float: float64 arithmetic, as mmcls


def _arrays(scores: torch.Tensor, targets: torch.Tensor, name: str) -> tuple[np.ndarray, ...]:
    """``scores`` and ``targets`` as numpy arrays, checked to be ``(N, C)`` multi-hot."""
    if targets.dim() != 2 or tuple(targets.shape) != tuple(scores.shape):
        raise ValueError(
            f"evaluation.metric: '{name}' is a multi-label metric and needs multi-hot targets "
            f"of the scores' shape {tuple(scores.shape)} (values 1, 0, -1 for difficult); got "
            f"targets of shape {tuple(targets.shape)} (class indices mean a single-label "
            f"dataset: use 'accuracy', 'precision', 'recall', 'f1_score')"
        )
    pred = scores.detach().cpu().numpy()
    target = targets.detach().cpu().numpy()
    bad = ~np.isin(target, (-1, 0, 1))
    if bad.any():
        value = target[bad].flat[0]
        raise ValueError(
            f"evaluation.metric: '{name}' needs targets of 1, 0 or -1 (difficult); got {value}"
        )
    return pred, target


def average_precision(pred: np.ndarray, target: np.ndarray) -> float:
    """mmcls's AP of one class: ``sum_n (R_n - R_{n-1}) P_n`` over the ranking by
    ``pred``; difficult samples (target -1) do not count in the precision."""
    order = np.argsort(-pred)
    sorted_target = target[order]
    positive = sorted_target == 1
    tp = np.cumsum(positive)
    total_pos = tp[-1]
    counted = np.cumsum(sorted_target != -1)
    tp[~positive] = 0
    precision = tp / np.maximum(counted, _EPS)
    return float(np.sum(precision) / np.maximum(total_pos, _EPS))


@METRICS.register_module(name="mAP")
def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """``mAP``: the mean over classes of :func:`average_precision`, in percent (mmcls)."""
    pred, target = _arrays(scores, targets, "mAP")
    if pred.shape[0] == 0:
        return {"mAP": float("nan")}
    ap = [average_precision(pred[:, c], target[:, c]) for c in range(pred.shape[1])]
    return {"mAP": float(np.mean(ap) * 100.0)}


def _predicted(pred: np.ndarray, thr: float | None, k: int | None) -> np.ndarray:
    """The predicted labels (bool ``(N, C)``): scores >= ``thr``, or each sample's top ``k``."""
    if thr is not None:
        return pred >= thr
    top = np.argsort(-pred, axis=1)[:, :k]
    positive = np.zeros(pred.shape, dtype=bool)
    positive[np.arange(pred.shape[0])[:, None], top] = True
    return positive


def average_performance(
    scores: torch.Tensor,
    targets: torch.Tensor,
    thr: float | None = None,
    k: int | None = None,
    name: str = "CP",
) -> dict[str, float]:
    """``CP, CR, CF1, OP, OR, OF1`` in percent, as mmcls's ``average_performance``:
    C is the mean over classes, O over all labels; difficult labels count as negatives."""
    if thr is None and k is None:
        thr = 0.5
    elif thr is not None and k is not None:
        warnings.warn(
            "evaluation.metric_options: both thr and k are given; thr is used (as mmcls)",
            stacklevel=3,
        )
    pred, target = _arrays(scores, targets, name)
    target = np.where(target == -1, 0, target).astype(bool)
    positive = _predicted(pred, thr, k)
    tp, fp, fn = positive & target, positive & ~target, ~positive & target
    tp_c, fp_c, fn_c = tp.sum(0), fp.sum(0), fn.sum(0)
    cp = float(np.mean(tp_c / np.maximum(tp_c + fp_c, _EPS)) * 100.0)
    cr = float(np.mean(tp_c / np.maximum(tp_c + fn_c, _EPS)) * 100.0)
    op = float(tp.sum() / np.maximum(tp.sum() + fp.sum(), _EPS) * 100.0)
    orec = float(tp.sum() / np.maximum(tp.sum() + fn.sum(), _EPS) * 100.0)
    return {
        "CP": cp,
        "CR": cr,
        "CF1": float(2 * cp * cr / np.maximum(cp + cr, _EPS)),
        "OP": op,
        "OR": orec,
        "OF1": float(2 * op * orec / np.maximum(op + orec, _EPS)),
    }


def check_options(options: Mapping[str, Any], path: str = "evaluation") -> list[str]:
    """Problems of the multi-label ``metric_options`` (``thr``, ``k``), each naming its key."""
    problems = []
    thr, k = options.get("thr"), options.get("k")
    if thr is not None and not is_number(thr):
        problems.append(f"{path}.metric_options.thr: expected a number (a score), got {thr!r}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        problems.append(f"{path}.metric_options.k: expected a positive int, got {k!r}")
    return problems


def _performance_metric(key: str):
    def metric(
        scores: torch.Tensor, targets: torch.Tensor, thr: float | None = None, k: int | None = None
    ) -> dict[str, float]:
        return {key: average_performance(scores, targets, thr, k, name=key)[key]}

    metric.__name__ = metric.__qualname__ = key
    metric.__doc__ = (
        f"mmcls's ``{key}`` in percent (see :func:`average_performance`): labels predicted "
        f"by ``thr`` (score >= thr) or the top ``k``; neither: thr=0.5."
    )
    metric.check_options = check_options
    return metric


for _key in PERFORMANCE_KEYS:
    METRICS.register_module(name=_key, module=_performance_metric(_key))
