"""Scores of a whole evaluation set, gathered from every process exactly once per sample."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def predict(model: nn.Module, dataloader: Iterable, accelerator) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax scores and targets (on CPU) of every sample of ``dataloader``.

    ``accelerator.gather_for_metrics`` drops the samples a distributed sampler repeats to
    pad the last batch, so the result is the same on 1 or N processes."""
    was_training = model.training
    model.eval()
    scores, targets = [], []
    for inputs, target in dataloader:
        with accelerator.autocast():
            logits = model(inputs)
        logits, target = accelerator.gather_for_metrics((logits.float(), target))
        scores.append(logits.softmax(dim=1).cpu())
        targets.append(target.cpu())
    model.train(was_training)
    return torch.cat(scores), torch.cat(targets)
