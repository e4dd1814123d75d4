"""ModelStep: one batch through the model, as the runner's train and val steps.

A model that defines ``train_step(batch, optimizer)``/``val_step(...)`` (mmcv's protocol)
is called through the DDP/FSDP wrapper's forward, so the wrapper's gradient-sync
bookkeeping still happens (Lightning does the same), under ``accelerator.autocast()``;
it must return a dict with a ``loss`` tensor and optionally ``log_vars``/``num_samples``.
Any other model is called as ``criterion(model(inputs), targets)``; class-index targets
given to a loss that takes only per-class probabilities (SoftTargetCrossEntropy, the
train loss under mixup, also used on the val phase's plain labels) are made one-hot
first (:func:`acchooks.models.losses.target_kind` says which loss takes what).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ModelStep:
    """The train/val step of one runner: ``step(batch, train)`` returns the outputs dict
    (``loss``, ``log_vars`` with every value detached and the total loss first,
    ``num_samples``)."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self._own_of: nn.Module | None = None
        self._own: dict[str, bool] = {}
        self._soft_of: nn.Module | None = None
        self._soft_only = False

    def _own_step(self, method: str) -> bool:
        """Whether the model defines ``train_step``/``val_step`` (asked once per model)."""
        model = self._runner.unwrapped_model
        if self._own_of is not model:
            self._own = {m: hasattr(model, m) for m in ("train_step", "val_step")}
            self._own_of = model
        return self._own[method]

    def _needs_soft(self, criterion: nn.Module | None) -> bool:
        """Whether ``criterion`` takes only soft targets (asked once per criterion)."""
        if criterion is not self._soft_of:
            from ..models.losses import target_kind

            self._soft_only = criterion is not None and target_kind(criterion) == "soft"
            self._soft_of = criterion
        return self._soft_only

    def through_wrapper(self, method: str, *args: Any) -> Any:
        """``unwrapped.<method>(*args)``, called through the wrapper's forward."""
        wrapper = self._runner.model
        inner = self._runner.unwrapped_model
        fn = getattr(inner, method)
        if inner is wrapper:
            return fn(*args)
        had = "forward" in inner.__dict__
        saved = inner.__dict__.get("forward")

        def restore() -> None:
            if had:
                inner.forward = saved
            else:
                inner.__dict__.pop("forward", None)

        def redirected(*_a: Any, **_k: Any) -> Any:
            restore()  # the method itself may call self(x): that must be the real forward
            return fn(*args)

        inner.forward = redirected
        try:
            return wrapper()
        finally:
            restore()

    def step(self, batch: Any, train: bool) -> dict[str, Any]:
        method = "train_step" if train else "val_step"
        runner = self._runner
        if self._own_step(method):
            with runner.accelerator.autocast():
                out = self.through_wrapper(method, batch, runner.optimizer)
            return _with_log_vars(out, f"{type(runner.unwrapped_model).__name__}.{method}")
        inputs, targets = batch[0], batch[1]
        logits = runner.model(inputs)
        if self._needs_soft(runner.criterion) and targets.dim() == 1:
            targets = F.one_hot(targets.long(), logits.shape[-1]).to(logits.dtype)
        loss = runner.criterion(logits, targets)
        n = inputs.shape[0] if isinstance(inputs, torch.Tensor) else len(inputs)  # len() of a
        return {"loss": loss, "log_vars": {"loss": loss.detach()}, "num_samples": n}  # tensor: slow


def _with_log_vars(out: Any, where: str) -> dict[str, Any]:
    if not isinstance(out, dict) or "loss" not in out:
        raise TypeError(
            f"{where} must return a dict with a 'loss' tensor, got {type(out).__name__}"
        )
    log_vars = out.get("log_vars") or {
        k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() == 0
    }
    # mmcv: the total loss first, every value detached
    out["log_vars"] = {
        "loss": out["loss"].detach(),
        **{
            k: v.detach() if isinstance(v, torch.Tensor) else v
            for k, v in log_vars.items()
            if k != "loss"
        },
    }
    return out
