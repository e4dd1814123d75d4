"""Classification metrics with MMClassification's names and conventions (percent).

Metrics are functions registered in METRICS taking ``(scores, targets, **options)`` for
the whole (gathered) evaluation set and returning ``{name: value}``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, did_you_mean
from ..registry import METRICS, accepted_arguments

AVERAGE_MODES = ("macro", "none")
Thrs = float | tuple[float, ...] | None


def _per_thr(thrs: Thrs, fn) -> dict[str, Any]:
    """mmcls naming: one value per metric, or ``<name>_thr_0.50`` per threshold of a tuple."""
    if isinstance(thrs, (tuple, list)):
        out: dict[str, Any] = {}
        for thr in thrs:
            out.update({f"{k}_thr_{thr:.2f}": v for k, v in fn(thr).items()})
        return out
    return fn(thrs)


@METRICS.register_module(name="accuracy")
def accuracy(
    scores: torch.Tensor,
    targets: torch.Tensor,
    topk: int | tuple[int, ...] = (1,),
    thrs: Thrs = None,
) -> dict[str, float]:
    """Top-k accuracy in percent: ``accuracy_top-1``, ``accuracy_top-5``, ... A prediction
    whose score is not above ``thrs`` counts as wrong (mmcls)."""
    topk = (topk,) if isinstance(topk, int) else tuple(topk)
    maxk = min(max(topk), scores.size(1))
    values, pred = scores.float().topk(maxk, dim=1)
    n = max(targets.numel(), 1)

    def at(thr: float | None) -> dict[str, float]:
        correct = pred.eq(targets.view(-1, 1))
        if thr is not None:
            correct &= values > thr
        return {
            f"accuracy_top-{k}": correct[:, : min(k, maxk)].any(dim=1).sum().item() * 100.0 / n
            for k in topk
        }

    return _per_thr(thrs, at)


def _check_average_mode(average_mode: str) -> None:
    if average_mode not in AVERAGE_MODES:
        raise ValueError(
            f"metric_options.average_mode: expected one of {AVERAGE_MODES}, got {average_mode!r}"
        )


def _average(name: str, per_class: torch.Tensor, average_mode: str) -> dict[str, float]:
    """'macro': the class mean under ``name``; 'none': ``<name>_class-<c>`` per class."""
    if average_mode == "macro":
        return {name: per_class.mean().item()}
    return {f"{name}_class-{c}": v for c, v in enumerate(per_class.tolist())}


def predicted_labels(scores: torch.Tensor, thr: float | None = None) -> torch.Tensor:
    """The predicted class of each sample (mmcls): the top-1 class, or -1 (none) where
    its score is <= ``thr``. Precision/recall/F1 and the confusion matrix use this."""
    pred_score, pred_label = scores.float().cpu().max(dim=1)
    if thr is not None:
        pred_label = torch.where(pred_score <= thr, -1, pred_label)
    return pred_label


def _precision_recall_f1(
    scores: torch.Tensor, targets: torch.Tensor, thr: float | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class precision, recall, F1 in percent, as mmcls's ``precision_recall_f1``:
    the top-1 class is the prediction, and a prediction with score <= ``thr`` is none."""
    classes = torch.arange(scores.size(1))
    pred_label = predicted_labels(scores, thr)
    pred_pos = classes == pred_label.view(-1, 1)
    gt_pos = classes == targets.cpu().view(-1, 1)
    tp = (pred_pos & gt_pos).sum(0).double()
    precision = tp / pred_pos.sum(0).clamp(min=1) * 100
    recall = tp / gt_pos.sum(0).clamp(min=1) * 100
    f1 = 2 * precision * recall / (precision + recall).clamp(min=torch.finfo(torch.float32).eps)
    return precision, recall, f1


def _prf_metric(index: int, name: str):
    def metric(
        scores: torch.Tensor, targets: torch.Tensor, average_mode: str = "macro", thrs: Thrs = 0.0
    ) -> dict[str, float]:
        _check_average_mode(average_mode)
        return _per_thr(
            thrs,
            lambda thr: _average(
                name, _precision_recall_f1(scores, targets, thr)[index], average_mode
            ),
        )

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = (
        f"mmcls's {name} in percent: class-averaged ('macro') or per class "
        f"('none'); ``thrs`` (default 0.) as in mmcls, a tuple gives one per threshold."
    )
    return metric


precision = METRICS.register_module(name="precision", module=_prf_metric(0, "precision"))
recall = METRICS.register_module(name="recall", module=_prf_metric(1, "recall"))
f1_score = METRICS.register_module(name="f1_score", module=_prf_metric(2, "f1_score"))


@METRICS.register_module(name="support")
def support(
    scores: torch.Tensor, targets: torch.Tensor, average_mode: str = "macro"
) -> dict[str, float]:
    """Samples per true class (mmcls): their total for 'macro', per class for 'none'."""
    _check_average_mode(average_mode)
    counts = torch.bincount(targets.cpu().long(), minlength=scores.size(1)).double()
    if average_mode == "macro":
        return {"support": counts.sum().item()}
    return _average("support", counts, "none")


def check_metrics(metric: Any, options: dict | None, path: str) -> list[str]:
    names = [metric] if isinstance(metric, str) else list(metric or [])
    problems = []
    allowed: set[str] = set()
    checks: list = []  # a metric's own ``check_options(options, path)``, once each
    for m in names:
        if m not in METRICS:
            problems.append(
                f"{path}.metric: unknown metric '{m}'{did_you_mean(m, METRICS.keys())} "
                f"(available: {', '.join(METRICS.keys())})"
            )
        else:
            allowed |= accepted_arguments(METRICS.get(m))[0] - {"scores", "targets"}
            check = getattr(METRICS.get(m), "check_options", None)
            checks += [check] if check is not None and check not in checks else []
    for check in checks:
        problems += check(options or {}, path)
    for k in options or {}:
        if allowed and k not in allowed:
            problems.append(
                f"{path}.metric_options: unexpected option '{k}'"
                f"{did_you_mean(k, allowed)} (accepted: {', '.join(sorted(allowed))})"
            )
    mode = (options or {}).get("average_mode", "macro")
    if mode not in AVERAGE_MODES:
        problems.append(
            f"{path}.metric_options.average_mode: expected one of "
            f"{', '.join(map(repr, AVERAGE_MODES))}, got {mode!r}"
        )
    return problems


def evaluate(
    scores: torch.Tensor,
    targets: torch.Tensor,
    metric: str | list[str] = "accuracy",
    metric_options: dict | None = None,
) -> dict[str, float]:
    problems = check_metrics(metric, metric_options, "evaluation")
    if problems:
        raise ConfigError(problems)
    results: dict[str, float] = {}
    for m in [metric] if isinstance(metric, str) else metric:
        fn = METRICS.get(m)
        names = accepted_arguments(fn)[0]
        results.update(
            fn(scores, targets, **{k: v for k, v in (metric_options or {}).items() if k in names})
        )
    return results
