"""OptimizerHook: backward, gradient clipping, the optimizer step and zero_grad.

Everything goes through the Accelerator: ``accelerator.backward`` scales the loss for
fp16 and divides it for gradient accumulation; inside the runner's
``accelerator.accumulate(model)`` block DDP skips the all-reduce on micro-steps, and the
prepared optimizer only really steps when ``accelerator.sync_gradients`` is True.
``runner.step`` counts optimizer steps that really happened (not micro-steps, not fp16
steps skipped for overflow), which is what the schedules follow.
"""
from __future__ import annotations

from ..errors import ConfigError, did_you_mean
from ..registry import HOOKS
from .hook import Hook
from .priority import Priority

NORM_KEYS = {"max_norm", "norm_type"}
VALUE_KEYS = {"clip_value"}


@HOOKS.register_module()
class OptimizerHook(Hook):
    """``optimizer_config=dict(grad_clip=dict(max_norm=35, norm_type=2))``; ``grad_clip=
    dict(clip_value=1.0)`` clips by value. The gradient norm is logged as ``grad_norm``."""

    priority = Priority.ABOVE_NORMAL

    def __init__(self, grad_clip: dict | None = None, detect_anomalous_params: bool = False):
        if grad_clip is not None:
            if not isinstance(grad_clip, dict):
                raise ConfigError(f"optimizer_config.grad_clip: expected a dict such as "
                                  f"dict(max_norm=35, norm_type=2) or None, got {grad_clip!r}")
            allowed = NORM_KEYS | VALUE_KEYS
            bad = [k for k in grad_clip if k not in allowed]
            if bad:
                raise ConfigError([f"optimizer_config.grad_clip: unexpected key '{k}'"
                                   f"{did_you_mean(k, allowed)} (accepted: {sorted(allowed)})" for k in bad])
            if not ("max_norm" in grad_clip) ^ ("clip_value" in grad_clip):
                raise ConfigError("optimizer_config.grad_clip: give either max_norm (with optional "
                                  f"norm_type) or clip_value, got {grad_clip}")
        self.grad_clip = grad_clip
        self.detect_anomalous_params = detect_anomalous_params

    def after_train_iter(self, runner) -> None:
        acc = runner.accelerator
        loss = runner.outputs["loss"]
        if self.detect_anomalous_params:
            self._detect_anomalous_parameters(loss, runner)
        acc.backward(loss)
        if self.grad_clip is not None and acc.sync_gradients:
            params = [p for p in runner.model.parameters() if p.grad is not None]
            if "clip_value" in self.grad_clip:
                acc.clip_grad_value_(params, self.grad_clip["clip_value"])
            elif params:
                norm = acc.clip_grad_norm_(params, self.grad_clip["max_norm"],
                                           self.grad_clip.get("norm_type", 2))
                runner.log_buffer.update({"grad_norm": norm.detach()})
        runner.optimizer.step()
        runner.optimizer.zero_grad(set_to_none=True)
        if acc.sync_gradients and not acc.optimizer_step_was_skipped:
            runner.step += 1

    @staticmethod
    def _detect_anomalous_parameters(loss, runner) -> None:
        """Log parameters that get no gradient from the loss (mmcv's option)."""
        reached, todo = set(), [loss.grad_fn]
        while todo:
            fn = todo.pop()
            if fn is None or fn in reached:
                continue
            reached.add(fn)
            if hasattr(fn, "variable"):
                reached.add(fn.variable)
            todo.extend(f for f, _ in fn.next_functions)
        for name, p in runner.unwrapped_model.named_parameters():
            if p.requires_grad and p not in reached:
                runner.logger.error(f"{name} with shape {tuple(p.size())} is not in the "
                                    f"computational graph")
