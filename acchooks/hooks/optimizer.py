"""OptimizerHook: backward, gradient clipping, the optimizer step and zero_grad.

Everything goes through the Accelerator: ``accelerator.backward`` scales the loss for
fp16 and divides it for gradient accumulation; inside the runner's
``accelerator.accumulate(model)`` block DDP skips the all-reduce on micro-steps, and the
prepared optimizer only really steps when ``accelerator.sync_gradients`` is True.
It reports each optimizer step that really happened (not micro-steps, not fp16 steps
skipped for overflow, not steps skipped for non-finite values) to the TrainState
(``runner.state.count_step()``); ``runner.step`` is that count, which the schedules follow.

Gradient accumulation is Accelerate's (``accelerator=dict(gradient_accumulation_steps=N)``)
or mmcv's ``optimizer_config=dict(type='GradientCumulativeOptimizerHook',
cumulative_iters=N)``, which the builder maps onto the same Accelerator setting.

**The step, without Accelerate's per-step checks.** With accelerate 1.15,
``AcceleratedOptimizer.step`` calls ``is_lomo_available()`` twice per step, an uncached
``importlib.util.find_spec`` over ``sys.path`` (~80 us each on a 2-core CPU VM), and
``zero_grad`` calls ``inspect.signature`` (~14 us). For a plain ``AcceleratedOptimizer``
without a gradient scaler (no fp16) whose inner optimizer is not LOMO, the hook therefore
does what that wrapper does then, once the wrapper's checks have been answered once:
``optimizer.optimizer.step()`` and ``optimizer.optimizer.zero_grad(set_to_none=True)``
when ``accelerator.sync_gradients``. Everything else (fp16 loss scaling, DeepSpeed's
wrapper, XLA) goes through the wrapper as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..accelerate_internals import direct_inner_optimizer, set_micro_step
from ..config.checks import positive_int
from ..errors import ConfigError, NonFiniteError, did_you_mean
from ..registry import HOOKS
from .hook import Hook
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


NORM_KEYS = {"max_norm", "norm_type"}
VALUE_KEYS = {"clip_value"}
NONFINITE = (None, "raise", "skip")


def _check_grad_clip(grad_clip) -> None:
    if not isinstance(grad_clip, dict):
        raise ConfigError(
            f"optimizer_config.grad_clip: expected a dict such as "
            f"dict(max_norm=35, norm_type=2) or None, got {grad_clip!r}"
        )
    allowed = NORM_KEYS | VALUE_KEYS
    bad = [k for k in grad_clip if k not in allowed]
    if bad:
        raise ConfigError(
            [
                f"optimizer_config.grad_clip: unexpected key '{k}'"
                f"{did_you_mean(k, allowed)} (accepted: {sorted(allowed)})"
                for k in bad
            ]
        )
    if not ("max_norm" in grad_clip) ^ ("clip_value" in grad_clip):
        raise ConfigError(
            "optimizer_config.grad_clip: give either max_norm (with optional "
            f"norm_type) or clip_value, got {grad_clip}"
        )


@HOOKS.register_module()
class OptimizerHook(Hook):
    """``optimizer_config=dict(grad_clip=dict(max_norm=35, norm_type=2))``; ``grad_clip=
    dict(clip_value=1.0)`` clips by value. The gradient norm is logged as ``grad_norm``
    whenever it is computed (norm clipping, or a ``nonfinite`` policy).

    ``nonfinite='raise'`` stops at the first optimizer step whose loss or gradients are
    NaN/inf on any process, naming the step, the processes and the loss terms;
    ``'skip'`` drops that step on every process (zero_grad, no update, the schedules do
    not advance) and logs the running count as ``skipped_steps``. The decision is taken
    jointly (one gather of a flag) so the replicas never diverge. Under ``'raise'`` a
    checkpoint (or the end of the run) with non-finite weights also stops the run with an
    error; otherwise the run ends with a loud message (see docs/checkpoints.md).
    """

    priority = Priority.ABOVE_NORMAL

    def __init__(
        self,
        grad_clip: dict | None = None,
        detect_anomalous_params: bool = False,
        cumulative_iters: int = 1,
        nonfinite: str | None = None,
    ):
        if grad_clip is not None:
            _check_grad_clip(grad_clip)
        positive_int(cumulative_iters, "optimizer_config.cumulative_iters")
        if nonfinite not in NONFINITE:
            raise ConfigError(
                f"optimizer_config.nonfinite: expected 'raise', 'skip' or None, got {nonfinite!r}"
            )
        self.grad_clip = grad_clip
        self.detect_anomalous_params = detect_anomalous_params
        self.cumulative_iters = cumulative_iters
        self.nonfinite = nonfinite
        self.skipped_steps = 0
        self._n = 1  # Accelerate's accumulation steps, set before the run
        self._wrapper = None  # the prepared optimizer _inner was found for
        self._inner = None  # its inner optimizer, when stepping it directly is equivalent
        self._bad_loss: torch.Tensor | None = None  # any non-finite loss in this window

    def nonfinite_policy(self) -> str | None:
        return self.nonfinite

    def state_dict(self) -> dict:
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict) -> None:
        self.skipped_steps = int(state.get("skipped_steps", 0))

    def before_run(self, runner: Runner) -> None:
        n = runner.accelerator.gradient_accumulation_steps
        self._n = n  # fixed when the Accelerator is made; read every iteration
        if self.cumulative_iters > 1 and n != self.cumulative_iters:
            raise ConfigError(
                f"optimizer_config.cumulative_iters={self.cumulative_iters} but the "
                f"Accelerator accumulates {n} micro-batches (accelerator."
                f"gradient_accumulation_steps or accelerate launch); make them equal"
            )
        if n > 1 and any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for m in runner.unwrapped_model.modules()
        ):
            runner.logger.warning(
                f"accumulating {n} micro-batches: BatchNorm statistics still "
                f"come from each micro-batch (as in mmcv)"
            )
        if n > 1:
            # windows restart with every pass over the data; a resume inside a pass
            # continues the window count where the interrupted run was
            done = runner.state.batches_done
            set_micro_step(runner.accelerator, done % n)
            if done % n:
                runner.logger.warning(
                    f"resumed after batch {done} of the epoch, inside a window of {n} "
                    f"accumulated micro-batches: the gradients of its first {done % n} "
                    f"micro-batches were not saved, so that one step sees fewer samples "
                    f"(save checkpoints every multiple of {n} iterations to avoid this)"
                )
            self._arm_last_window(runner, runner.iter)

    @staticmethod
    def _arm_last_window(runner: Runner, next_iter: int) -> None:
        """An iteration-based run can end inside a window (``max_iters % n != 0`` and not at
        the end of a pass): make Accelerate sync (and the optimizer step) on the last
        iteration, as mmcv's ``is_last_iter`` does, instead of dropping its micro-batches.
        ``accelerator.step`` is Accelerate's micro-step counter: the next ``accumulate``
        increments it and syncs when it is a multiple of ``n``."""
        if next_iter == runner.max_iters - 1:
            set_micro_step(runner.accelerator, runner.accelerator.gradient_accumulation_steps - 1)

    def _loss_factor(self, runner: Runner, n: int) -> int:
        """mmcv's GradientCumulativeOptimizerHook: the last, incomplete window (of an epoch,
        or of an iteration-based run) is averaged over its own size. Accelerate always
        divides by ``n``."""
        length = runner.epoch_length
        if not runner.by_epoch:  # this pass over the data may be cut short by max_iters
            length = min(length, runner.max_iters - (runner.iter - runner.inner_iter))
        rest = length % n
        return rest if rest and runner.inner_iter >= length - rest else n

    def after_train_iter(self, runner: Runner) -> None:
        acc = runner.accelerator
        loss = runner.outputs["loss"]
        if self.detect_anomalous_params:
            self._detect_anomalous_parameters(loss, runner)
        if self.nonfinite is not None:
            bad = ~torch.isfinite(loss.detach())
            self._bad_loss = bad if self._bad_loss is None else self._bad_loss | bad
        n = self._n
        if n > 1:
            factor = self._loss_factor(runner, n)
            acc.backward(loss * (n / factor) if factor != n else loss)
            self._arm_last_window(runner, runner.iter + 1)
            if not acc.sync_gradients:
                return
        else:
            acc.backward(loss)
        params = (
            [p for p in runner.model.parameters() if p.grad is not None]
            if self.nonfinite is not None or self.grad_clip is not None
            else []
        )
        if self.nonfinite is not None and self._skip_nonfinite(runner, params):
            return
        if self.grad_clip is not None:
            if "clip_value" in self.grad_clip:
                acc.clip_grad_value_(params, self.grad_clip["clip_value"])
            elif params:
                norm = acc.clip_grad_norm_(
                    params, self.grad_clip["max_norm"], self.grad_clip.get("norm_type", 2)
                )
                runner.log_buffer.update({"grad_norm": norm.detach()})
        self._step_and_zero_grad(runner.optimizer, acc)
        scaled = acc.scaler is not None
        if scaled and acc.optimizer_step_was_skipped:  # fp16 overflow: the update was skipped
            self.skipped_steps += 1
            runner.logger.debug(f"fp16 overflow: step {runner.step} skipped, loss scale lowered")
        else:
            runner.state.count_step()
        if scaled or self.nonfinite == "skip":
            runner.log_buffer.update({"skipped_steps": float(self.skipped_steps)})

    def _step_and_zero_grad(self, optimizer, acc) -> None:
        if optimizer is not self._wrapper:  # first step, or a new optimizer
            self._wrapper, self._inner = optimizer, direct_inner_optimizer(optimizer, acc)
        inner = self._inner
        if inner is not None and acc.sync_gradients:
            inner.step()
            inner.zero_grad(set_to_none=True)
        else:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def _skip_nonfinite(self, runner: Runner, params: list[torch.Tensor]) -> bool:
        """Decide jointly whether this step is non-finite anywhere; raise or skip."""
        acc = runner.accelerator
        bad = (
            self._bad_loss.reshape(()).clone()
            if self._bad_loss is not None
            else torch.zeros((), dtype=torch.bool, device=acc.device)
        )
        self._bad_loss = None
        norm = None
        if params and acc.scaler is None:  # under fp16 the GradScaler owns inf gradients
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad.detach().float()) for p in params])
            )
            bad = bad | ~torch.isfinite(norm)
        flags = acc.gather(bad.float().reshape(1).to(acc.device))  # one collective
        if not bool(flags.any()):
            if norm is not None and self.grad_clip is None:
                runner.log_buffer.update({"grad_norm": norm})
            return False
        ranks = [i for i, f in enumerate(flags.tolist()) if f]
        terms = {k: float(v) for k, v in runner.outputs.get("log_vars", {}).items()}
        where = (
            f"optimizer step {runner.step} (epoch {runner.epoch + 1}, iter {runner.iter + 1})"
            f" on process(es) {ranks} of {acc.num_processes}"
        )
        if self.nonfinite == "raise":
            raise NonFiniteError(
                f"non-finite loss or gradients at {where}; loss terms on "
                f"process {acc.process_index}: {terms}; set "
                f"optimizer_config.nonfinite='skip' to skip such steps"
            )
        runner.optimizer.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        runner.log_buffer.update({"skipped_steps": float(self.skipped_steps)})
        runner.logger.warning(
            f"skipped non-finite {where}; loss terms on process "
            f"{acc.process_index}: {terms} ({self.skipped_steps} skipped so far)"
        )
        return True

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
                runner.logger.error(
                    f"{name} with shape {tuple(p.size())} is not in the computational graph"
                )


@HOOKS.register_module()
class GradientCumulativeOptimizerHook(OptimizerHook):
    """mmcv's ``optimizer_config=dict(type='GradientCumulativeOptimizerHook',
    cumulative_iters=4)``: the OptimizerHook with Accelerate's accumulation over
    ``cumulative_iters`` micro-batches (the builder configures the Accelerator)."""
