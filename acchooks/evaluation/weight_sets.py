"""More than one set of weights evaluated in one pass over the val set.

EvalHook evaluates the weights in the model (the EMA ones, when an EMAHook's
``evaluation_weights`` swapped them in) and, with ``evaluation.both_weights=True``, every
other set a hook offers through ``evaluation_other_weights`` (EMAHook: the raw weights, or
the EMA ones when it evaluates the raw). Per batch, the model runs once with its own
weights, then once inside each offered set's :meth:`WeightSet.swap`, which copies that set
into the model's parameters and the first set back after (two ``torch._foreach_copy_``
per batch and set); the data loader is iterated once. The parameters are the ones a
DDP-wrapped model holds, so every process swaps the same tensors it trains.

All outputs of a batch go through one ``accelerator.gather_for_metrics`` call, which
drops the distributed sampler's padding the same way for each set: every set's scores
equal those of an evaluation of that set alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from .predict import class_scores, is_multi_hot


@dataclass(frozen=True)
class WeightSet:
    """A second set of weights a hook offers for evaluation: ``name`` prefixes its metrics
    (``raw_accuracy_top-1``) and ``swap()`` is a context within which the model holds it."""

    name: str
    swap: Callable[[], AbstractContextManager[None]]


def _scores(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return class_scores(logits, is_multi_hot(logits, target)).cpu()


@torch.no_grad()
def predict_sets(
    model: nn.Module,
    dataloader: Iterable,
    accelerator,
    others: list[WeightSet],
    on_batch: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Scores of the model's own weights, of each of ``others`` by name, and the targets
    of every sample of ``dataloader``, gathered from every process (module docstring)."""
    was_training = model.training
    model.eval()
    own: list[torch.Tensor] = []
    other: dict[str, list[torch.Tensor]] = {s.name: [] for s in others}
    targets: list[torch.Tensor] = []
    try:
        for inputs, target, *_ in dataloader:  # (inputs, target[, index])
            with accelerator.autocast():
                logits = [model(inputs)]
                for s in others:
                    with s.swap():
                        logits.append(model(inputs))
            *logits, target = accelerator.gather_for_metrics((*[x.float() for x in logits], target))
            own.append(_scores(logits[0], target))
            for s, x in zip(others, logits[1:], strict=True):
                other[s.name].append(_scores(x, target))
            targets.append(target.cpu())
            if on_batch is not None:
                on_batch()
    finally:
        model.train(was_training)
    return torch.cat(own), {k: torch.cat(v) for k, v in other.items()}, torch.cat(targets)
