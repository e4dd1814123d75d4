"""Scores of a whole evaluation set, gathered from every process exactly once per sample."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def class_scores(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Per-class scores of ``logits``: independent sigmoids for a multi-label set (as
    mmcls's multi-label heads), else a softmax over the classes."""
    return logits.sigmoid() if multi_label else logits.softmax(dim=-1)


def is_multi_hot(logits: torch.Tensor, target: torch.Tensor) -> bool:
    """Targets given per class (multi-hot ``(B, C)`` like the logits): a multi-label set."""
    return target.dim() == 2 and target.shape == logits.shape


@torch.no_grad()
def predict(
    model: nn.Module,
    dataloader: Iterable,
    accelerator,
    on_batch: Callable[[], None] | None = None,
    indices: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax scores and targets (on CPU) of every sample of ``dataloader``; sigmoid
    scores where the targets are per class (multi-hot ``(B, C)``: a multi-label set, as
    mmcls's multi-label heads), the targets passed through unchanged.

    ``accelerator.gather_for_metrics`` drops the samples a distributed sampler repeats to
    pad the last batch, so the result is the same on 1 or N processes. ``on_batch`` is
    called after each batch (a progress bar). Batches of ``(inputs, target, index)`` (a
    dataset wrapped in :class:`~acchooks.evaluation.outputs.WithIndex`) have their sample
    indices gathered the same way and appended to the list ``indices``."""
    was_training = model.training
    model.eval()
    scores, targets = [], []
    for inputs, target, *index in dataloader:
        with accelerator.autocast():
            logits = model(inputs)
        logits, target, index = accelerator.gather_for_metrics((logits.float(), target, index))
        if indices is not None:
            indices.extend(i.cpu() for i in index)
        scores.append(class_scores(logits, is_multi_hot(logits, target)).cpu())
        targets.append(target.cpu())
        if on_batch is not None:
            on_batch()
    model.train(was_training)
    return torch.cat(scores), torch.cat(targets)
