"""EMAHook: an exponential moving average of the model's weights (mmcv's arguments).

``custom_hooks = [dict(type='EMAHook', momentum=0.0002, interval=1, warm_up=100)]``.
After optimizer step ``t`` (0-based; ``runner.step`` counts real steps, so accumulation
micro-steps and fp16 overflow skips are not steps), when ``t % interval == 0``::

    m   = min(momentum_per_update, (1 + t) / (warm_up + t))     # mmcv's warm-up
    ema = (1 - m) * ema + m * param                               # one torch._foreach_lerp_

``momentum_per_update = 1 - (1 - momentum) ** interval``: an update every ``interval``
steps weighs like ``interval`` per-step updates. (mmcv writes ``momentum ** interval``,
which for the tutorial's ``interval=100`` is 0 and leaves the EMA at the initial weights.)
``decay=0.9998`` is timm ModelEmaV3's spelling of ``momentum=1 - decay``.

Buffers (BatchNorm statistics) are not averaged: the EMA holds a copy of the model's
buffers, taken whenever the EMA is read (checkpoint, export, ``ema_state_dict``) and at
the end of every epoch, not at every update (that copy is one small kernel per buffer,
~7 % of a resnet18 update on CPU). EMA tensors are fp32 on the model's device (or
``device``); the tensor lists are collected once in ``before_run``.

**Priority.** The update follows the optimizer step whatever the priority: the hook
remembers the last step it averaged and catches up at its next call. With the tutorial's
``priority='HIGH'`` (before the OptimizerHook in ``after_train_iter``) the weights of
step ``t`` are averaged at the next iteration, and at ``after_train_epoch`` / before
evaluation at the latest. So checkpoints, resume and evaluation see the same EMA.

**Evaluation.** With ``evaluate_with_ema=True`` the EvalHook enters
:meth:`evaluation_weights`, which puts the EMA parameters into the model for the
evaluation (and the best checkpoint it writes) and puts the trained ones back after.
Unlike mmcv's swap from ``after_train_epoch`` to the next ``before_train_epoch``, regular
checkpoints therefore hold the trained weights, and resume continues training exactly.
With ``evaluation.both_weights`` (the default) EvalHook also evaluates the other set in
the same pass (:meth:`evaluation_other_weights`: the raw weights, logged as
``raw_<metric>``, or the EMA ones as ``ema_<metric>`` with ``evaluate_with_ema=False``).
The EMA weights are in the hook's state, with ``evaluated`` (``'ema'``/``'raw'``): ``acchooks
test``/``convert --weights ema|raw`` and ``load_from=dict(checkpoint=..., weights=...)``
choose between them, by default the ones EvalHook evaluated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from ..config.checks import non_negative_int, number_in, positive_int, problems_of
from ..errors import ConfigError
from ..registry import HOOKS
from .hook import Hook
from .priority import Priority

if TYPE_CHECKING:
    from ..evaluation.weight_sets import WeightSet
    from ..runner.runner import Runner


@HOOKS.register_module()
class EMAHook(Hook):
    """``custom_hooks=[dict(type='EMAHook', momentum=0.0002, interval=1, priority='HIGH')]``:
    an exponential moving average of the weights, evaluated in their place by EvalHook
    (``evaluation_weights``) and saved in checkpoints (see the module docstring)."""

    priority = Priority.NORMAL

    def __init__(
        self,
        momentum: float | None = None,
        interval: int = 1,
        warm_up: int = 100,
        resume_from: str | None = None,
        decay: float | None = None,
        evaluate_with_ema: bool = True,
        device: str | None = None,
    ):
        problems = []
        if momentum is not None and decay is not None:
            problems.append("EMAHook: give momentum or decay (= 1 - momentum), not both")
        name, given = ("decay", decay) if decay is not None else ("momentum", momentum)
        given = 0.0002 if given is None else given
        problems += problems_of(
            (number_in(0, 1, low_open=True, high_open=True), given, f"EMAHook.{name}"),
            (positive_int, interval, "EMAHook.interval"),
            (non_negative_int.noted("0: no warm-up"), warm_up, "EMAHook.warm_up"),
        )
        if problems:
            raise ConfigError(problems)
        m = 1.0 - decay if decay is not None else given
        self.momentum, self.interval, self.warm_up = float(m), interval, warm_up
        self.update_momentum = 1.0 - (1.0 - self.momentum) ** interval
        self.resume_from, self.evaluate_with_ema = resume_from, evaluate_with_ema
        self.device = torch.device(device) if device is not None else None
        self.updates = 0  # EMA updates done
        self.seen_step = 0  # runner.step when the EMA last caught up
        self._pending: dict[str, Any] | None = None  # state loaded before before_run
        self._names: list[str] = []
        self._ema: list[torch.Tensor] = []
        self._raw: list[torch.Tensor] | None = None  # within evaluation_weights

    # ---------------------------------------------------------------- setup
    def before_run(self, runner: Runner) -> None:
        acc = getattr(runner, "accelerator", None)  # a bare runner (benchmarks) has none
        if str(getattr(acc, "distributed_type", "")).endswith("FSDP"):
            # the EMA would average each process's shards (FSDP1: flat parameters under
            # wrapped names), and swapping EMA weights in for evaluation fails on DTensors
            raise ConfigError(
                "custom_hooks (EMAHook): not supported under FSDP yet (the EMA "
                "would hold each process's shards); train with DDP "
                "(launch/multi_gpu.yaml) or remove the EMAHook"
            )
        model = runner.unwrapped_model
        params = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
        params_ids = {id(p) for _, p in params}
        buffers = [(n, b) for n, b in model.named_buffers() if id(b) not in params_ids]
        device = self.device
        self._params = [p for _, p in params]
        self._buffers = [b for _, b in buffers]
        self._names = [n for n, _ in params] + [n for n, _ in buffers]
        self._ema = [
            p.detach().to(device=device or p.device, dtype=torch.float32, copy=True)
            for p in self._params
        ]
        self._ema += [b.detach().to(device=device or b.device, copy=True) for b in self._buffers]
        self._ema_params, self._ema_buffers = (
            self._ema[: len(self._params)],
            self._ema[len(self._params) :],
        )
        # cast/move only when the model's tensors are not already fp32 on the EMA device
        self._convert = any(
            p.dtype != torch.float32 or e.device != p.device
            for p, e in zip(self._params, self._ema_params, strict=True)
        )
        self.seen_step = runner.step
        if self._pending is not None:
            self._apply_state(self._pending, "resume")
            self._pending = None
        elif self.resume_from:
            self._load_from_file(runner, self.resume_from)

    def _load_from_file(self, runner: Runner, path: str) -> None:
        """``resume_from``: the EMA state of one of our checkpoints, else its model weights."""
        from ..checkpoint import load_checkpoint
        from ..checkpoint.tree import join_tensors
        from ..checkpoint.weights import read_weights

        if os.path.isdir(path):
            ckpt = load_checkpoint(path)
            saved = ckpt.state.get("hooks", {}).get(self.state_key)
            if saved:
                state = join_tensors(saved, ckpt.tensors.get(f"hook.{self.state_key}", {}))
                self._apply_state(state, f"resume_from {path}")
                self.seen_step = runner.step
                return
        weights = read_weights(path, what="EMAHook.resume_from")
        self._apply_state(
            {"ema": weights, "updates": 0, "step": runner.step}, f"resume_from {path}"
        )
        runner.logger.info(f"EMAHook: EMA initialised from the model weights in {path}")

    # ---------------------------------------------------------------- update
    def _catch_up(self, runner: Runner) -> None:
        """Average the current weights if optimizer steps happened since the last call."""
        step = runner.step
        if step <= self.seen_step:
            return
        due = [t for t in range(self.seen_step, step) if t % self.interval == 0]
        self.seen_step = step
        if due:
            self._update(due[-1])

    @torch.no_grad()
    def _update(self, t: int) -> None:
        m = self.update_momentum
        if self.warm_up:
            m = min(m, (1 + t) / (self.warm_up + t))
        src = self._params
        if self._convert:
            src = [
                p.to(device=e.device, dtype=torch.float32)
                for p, e in zip(src, self._ema_params, strict=True)
            ]
        torch._foreach_lerp_(self._ema_params, src, m)
        self.updates += 1

    @torch.no_grad()
    def _sync_buffers(self) -> None:
        if self._buffers:
            torch._foreach_copy_(self._ema_buffers, self._buffers)

    def after_train_iter(self, runner: Runner) -> None:
        self._catch_up(runner)

    def after_train_epoch(self, runner: Runner) -> None:
        self._catch_up(runner)
        self._sync_buffers()  # the epoch's final statistics (also after a SyncBuffersHook)

    # ---------------------------------------------------------------- evaluation
    @contextmanager
    def evaluation_weights(self, runner: Runner) -> Iterator[None]:
        """Within the block the model holds the EMA parameters (``evaluate_with_ema``)."""
        self._catch_up(runner)
        if not self.evaluate_with_ema or not self._ema:
            yield
            return
        with torch.no_grad():
            backup = [p.detach().clone() for p in self._params]
            torch._foreach_copy_(self._params, self._ema_params)
        runner.logger.info(
            f"Evaluating with EMA weights ({self.updates} updates, step {self.seen_step})"
        )
        self._raw = backup  # the trained weights, for evaluation_other_weights
        try:
            yield
        finally:
            self._raw = None
            with torch.no_grad():
                torch._foreach_copy_(self._params, backup)

    @contextmanager
    def evaluation_other_weights(self, runner: Runner) -> Iterator[WeightSet | None]:
        """The set :meth:`evaluation_weights` did not put in the model (``'raw'`` when it
        put the EMA in, else ``'ema'``), swapped in per batch (``evaluation.both_weights``)."""
        from ..evaluation.weight_sets import WeightSet

        self._catch_up(runner)
        if not self._ema:
            yield None
            return
        if self.evaluate_with_ema:
            if self._raw is None:
                raise RuntimeError("EMAHook: evaluation_other_weights outside evaluation_weights")
            name, other, own = "raw", self._raw, self._ema_params
        else:
            with torch.no_grad():
                own = [p.detach().clone() for p in self._params]
            name, other = "ema", self._ema_params

        @contextmanager
        def swap() -> Iterator[None]:
            with torch.no_grad():
                torch._foreach_copy_(self._params, other)
            try:
                yield
            finally:
                with torch.no_grad():
                    torch._foreach_copy_(self._params, own)

        runner.logger.info(f"Evaluating the {name} weights too (logged as {name}_<metric>)")
        yield WeightSet(name, swap)

    # ---------------------------------------------------------------- state
    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA weights by the model's parameter and buffer names."""
        self._sync_buffers()
        return dict(zip(self._names, self._ema, strict=True))

    def export(self, path: str | os.PathLike) -> str:
        """Write the EMA weights as a plain ``model.safetensors`` (loads into timm)."""
        from safetensors.torch import save_file

        path = os.fspath(path)
        if os.path.isdir(path) or not path.endswith(".safetensors"):
            path = os.path.join(path, "model.safetensors")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.ema_state_dict().items()}, path
        )
        return path

    def state_dict(self) -> dict[str, Any]:
        if not self._ema:
            return dict(self._pending) if self._pending else {}
        return {
            "ema": self.ema_state_dict(),
            "updates": self.updates,
            "step": self.seen_step,
            "momentum": self.momentum,
            "interval": self.interval,
            # what EvalHook evaluates: the default of acchooks test/convert --weights
            "evaluated": "ema" if self.evaluate_with_ema else "raw",
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # resume happens before before_run has collected the model's tensors: keep it
        if not self._ema:
            self._pending = dict(state)
        else:
            self._apply_state(state, "load_state_dict")

    def _apply_state(self, state: dict[str, Any], source: str) -> None:
        saved = state.get("ema", {})
        missing = [n for n in self._names if n not in saved]
        if missing:
            raise ValueError(
                f"EMAHook ({source}): the saved EMA lacks {len(missing)} of the "
                f"model's tensors, e.g. {missing[:3]}; was it saved for another model?"
            )
        with torch.no_grad():
            for name, ema in zip(self._names, self._ema, strict=True):
                ema.copy_(saved[name])
        self.updates = int(state.get("updates", 0))
        self.seen_step = int(state.get("step", self.seen_step))
