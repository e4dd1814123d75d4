"""Classification metrics with MMClassification's names and conventions (percent).

Metrics are functions registered in METRICS taking ``(scores, targets, **options)`` for
the whole (gathered) evaluation set and returning ``{name: value}``.
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, did_you_mean
from ..registry import METRICS, accepted_arguments


@METRICS.register_module(name="accuracy")
def accuracy(scores: torch.Tensor, targets: torch.Tensor, topk: int | tuple[int, ...] = (1,),
             thrs: float | None = None) -> dict[str, float]:
    """Top-k accuracy in percent: ``accuracy_top-1``, ``accuracy_top-5``, ... A prediction
    whose score is not above ``thrs`` counts as wrong (mmcls)."""
    topk = (topk,) if isinstance(topk, int) else tuple(topk)
    maxk = min(max(topk), scores.size(1))
    values, pred = scores.float().topk(maxk, dim=1)
    correct = pred.eq(targets.view(-1, 1))
    if thrs is not None:
        correct &= values > thrs
    n = max(targets.numel(), 1)
    return {f"accuracy_top-{k}": correct[:, :min(k, maxk)].any(dim=1).sum().item() * 100.0 / n
            for k in topk}


def check_metrics(metric: Any, options: dict | None, path: str) -> list[str]:
    names = [metric] if isinstance(metric, str) else list(metric or [])
    problems = []
    allowed: set[str] = set()
    for m in names:
        if m not in METRICS:
            problems.append(f"{path}.metric: unknown metric '{m}'{did_you_mean(m, METRICS.keys())} "
                            f"(available: {', '.join(METRICS.keys())})")
        else:
            allowed |= accepted_arguments(METRICS.get(m))[0] - {"scores", "targets"}
    for k in (options or {}):
        if allowed and k not in allowed:
            problems.append(f"{path}.metric_options: unexpected option '{k}'"
                            f"{did_you_mean(k, allowed)} (accepted: {', '.join(sorted(allowed))})")
    return problems


def evaluate(scores: torch.Tensor, targets: torch.Tensor, metric: str | list[str] = "accuracy",
             metric_options: dict | None = None) -> dict[str, float]:
    problems = check_metrics(metric, metric_options, "evaluation")
    if problems:
        raise ConfigError(problems)
    results: dict[str, float] = {}
    for m in [metric] if isinstance(metric, str) else metric:
        fn = METRICS.get(m)
        names = accepted_arguments(fn)[0]
        results.update(fn(scores, targets, **{k: v for k, v in (metric_options or {}).items()
                                              if k in names}))
    return results
