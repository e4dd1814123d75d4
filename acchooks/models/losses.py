"""Classification losses registered in ``LOSSES``.

``CrossEntropyLoss`` takes mmcls-style arguments; timm's losses are registered as they are.

What targets each loss takes is declared once here (:func:`target_kind`): ``'hard'``
class indices, ``'soft'`` per-class probabilities (what mixup/CutMix give), or
``'both'``. A loss class of one's own declares it as ``target_kind = 'both'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.loss import BinaryCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from torch import nn

from ..registry import LOSSES

TARGET_KINDS = ("hard", "soft", "both")


@LOSSES.register_module()
class CrossEntropyLoss(nn.Module):
    """``F.cross_entropy`` times ``loss_weight``.

    Targets may be class indices or per-class probabilities (e.g. after mixup).
    ``weight`` (per-class weights) may be a list; it is kept as a buffer so it follows
    the module to its device. ``use_sigmoid=True`` is mmcls's multi-label loss: binary
    cross-entropy with logits on multi-hot targets (class indices become one-hot),
    difficult labels (-1) counted as positives (mmcls's MultiLabelClsHead takes
    ``abs``), summed over classes and averaged over samples (mmcls's ``avg_factor``).
    """

    target_kind = "both"

    def __init__(
        self,
        label_smoothing: float = 0.0,
        loss_weight: float = 1.0,
        weight: Sequence[float] | torch.Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
        use_sigmoid: bool = False,
    ):
        super().__init__()
        self.use_sigmoid = bool(use_sigmoid)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.label_smoothing, self.loss_weight = float(label_smoothing), float(loss_weight)
        self.reduction, self.ignore_index = reduction, ignore_index
        self.register_buffer(
            "weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        if self.use_sigmoid:
            return self._sigmoid(logits, target, weight)
        loss = F.cross_entropy(
            logits,
            target,
            weight=weight,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )
        return loss * self.loss_weight if self.loss_weight != 1.0 else loss

    def _sigmoid(self, logits: torch.Tensor, target: torch.Tensor, weight) -> torch.Tensor:
        if target.dim() == 1:  # class indices
            target = F.one_hot(target.long(), logits.shape[1])
        target = target.to(logits.dtype).abs()  # difficult (-1) -> positive, as mmcls
        loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none")
        if self.reduction == "mean":
            loss = loss.sum() / max(len(logits), 1)
        elif self.reduction == "sum":
            loss = loss.sum()
        return loss * self.loss_weight if self.loss_weight != 1.0 else loss

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, loss_weight={self.loss_weight}" + (
            ", use_sigmoid=True" if self.use_sigmoid else ""
        )


# timm's own losses, under their timm names.
LOSSES.register_module(module=LabelSmoothingCrossEntropy, name="LabelSmoothingCrossEntropy")
LOSSES.register_module(module=SoftTargetCrossEntropy, name="SoftTargetCrossEntropy")
LOSSES.register_module(module=BinaryCrossEntropy, name="BinaryCrossEntropy")

# timm's classes, which we do not change: what they take
_TIMM_TARGET_KINDS: dict[type, str] = {
    SoftTargetCrossEntropy: "soft",  # sum(-target * log_softmax): probabilities only
    BinaryCrossEntropy: "both",  # one-hot (smoothed) from indices, or soft as given
    LabelSmoothingCrossEntropy: "hard",  # gathers the target's index
}


def target_kind(loss: type | nn.Module) -> str | None:
    """``'hard'``, ``'soft'`` or ``'both'``: the targets a loss class (or instance) takes;
    None when it does not say (a class of one's own without ``target_kind``)."""
    cls = loss if isinstance(loss, type) else type(loss)
    declared = getattr(cls, "target_kind", None)
    if declared in TARGET_KINDS:
        return declared
    for known, kind in _TIMM_TARGET_KINDS.items():
        if issubclass(cls, known):
            return kind
    return None
