"""MixupHook: mixup / CutMix of each train batch, resumable bit for bit.

The mixing is timm's ``Mixup`` (its arguments, defaults and arithmetic), so a batch
comes out exactly as timm mixes it. timm draws λ, the box and the per-element choices
from NumPy's global RNG, whose state depends on everything drawn before; here
(:class:`~acchooks.recipes.seeded_mixup.SeededMixup`) each batch's draws come from a
private generator seeded from (seed, epoch, iteration, process index). The draws are
then a pure function of where the run is: a run resumed mid-epoch mixes its batches
exactly as the uninterrupted run did, on any number of workers; the hook keeps no state
and NumPy's global RNG is never touched.

It runs at ``before_train_forward`` and replaces ``runner.data_batch``'s inputs and
targets by the mixed inputs and the soft targets (label smoothing folded in). From
``mixup_off_epoch`` on it stops mixing but still gives the (smoothed) one-hot targets,
as timm's train.py does. A batch of odd size (the last one of an epoch) mixes all but
its last sample, which timm refuses. Configure it with the top-level ``mixup`` key or
MMClassification's ``model.train_cfg`` (:mod:`acchooks.recipes.mixup`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError
from ..recipes.mixup import MIXUP
from ..registry import HOOKS
from .hook import Hook

if TYPE_CHECKING:
    from ..runner.runner import Runner


def draw_seed(seed: int, epoch: int, iteration: int, rank: int = 0) -> int:
    """The 63-bit seed of one batch's draws on one process."""
    from ..datasets.seeded import sample_seed  # here: acchooks.datasets imports torchvision

    return sample_seed(sample_seed(seed, epoch, iteration), rank, 0x4D6978)


@HOOKS.register_module()
class MixupHook(Hook):
    """Mixup/CutMix with timm's ``Mixup`` arguments; draws seeded by (seed, epoch,
    iteration, process). ``seed=None``: the run's seed."""

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        cutmix_minmax: list[float] | None = None,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: str = "batch",
        correct_lam: bool = True,
        label_smoothing: float = 0.1,
        num_classes: int | None = 1000,
        mixup_off_epoch: int = 0,
        seed: int | None = None,
    ) -> None:
        args = {k: v for k, v in locals().items() if k in MIXUP}
        MIXUP.check(args, "MixupHook")
        if not (mixup_alpha > 0 or cutmix_alpha > 0 or cutmix_minmax is not None):
            raise ConfigError("MixupHook: mixup_alpha, cutmix_alpha and cutmix_minmax all off")
        if num_classes is None:
            raise ConfigError("MixupHook.num_classes: missing (the number of classes)")
        from ..recipes.seeded_mixup import SeededMixup  # here: acchooks.hooks stays timm-free

        self.mixup = SeededMixup(
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            cutmix_minmax=cutmix_minmax,
            prob=prob,
            switch_prob=switch_prob,
            mode=mode,
            correct_lam=correct_lam,
            label_smoothing=label_smoothing,
            num_classes=num_classes,
        )
        self.mixup_off_epoch = mixup_off_epoch
        self.seed = seed

    def mix(
        self, x: torch.Tensor, target: torch.Tensor, seed: int, enabled: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mixed inputs, soft targets)`` of one batch, its draws seeded by ``seed``;
        ``x`` is mixed in place, as timm does."""
        from timm.data.mixup import mixup_target

        mixup = self.mixup
        mixup.mixup_enabled = enabled
        mixup.seed(seed)
        if len(x) % 2 == 0:
            return mixup(x, target)
        _, soft = mixup(x[:-1], target[:-1])  # in place on the view
        last = mixup_target(target[-1:], mixup.num_classes, 1.0, mixup.label_smoothing)
        return x, torch.cat([soft, last.to(soft.dtype)])

    def before_train_forward(self, runner: Runner) -> None:
        batch = runner.data_batch
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise TypeError(
                f"MixupHook: expected a train batch (inputs, targets, ...), got "
                f"{type(batch).__name__}"
            )
        seed = self.seed if self.seed is not None else runner.meta.get("seed", 0)
        rank = getattr(runner.accelerator, "process_index", 0)
        off = self.mixup_off_epoch
        x, soft = self.mix(
            batch[0],
            batch[1],
            draw_seed(seed, runner.epoch, runner.iter, rank),
            enabled=not (off and runner.epoch >= off),
        )
        rest = list(batch[2:])
        runner.data_batch = [x, soft, *rest] if isinstance(batch, list) else (x, soft, *rest)
