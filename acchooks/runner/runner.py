"""The Runner: owns the loop, the training state and the hooks; calls the hooks.

It never steps the optimizer, changes the lr, writes logs or decides when to save:
hooks do that. What it does:

* iterate the workflow phases (``[('train', 1), ('val', 1)]``) until ``max_epochs``
  train epochs (or ``max_iters`` train iterations) are done;
* run each batch through the model (``train_step``/``val_step``), inside
  ``accelerator.accumulate(model)`` for train batches so DDP's no_sync covers backward;
* keep the counters ``epoch`` (completed train epochs), ``iter`` (completed train
  iterations), ``inner_iter`` (index within the current epoch) and ``step`` (optimizer
  steps that really happened, counted by the OptimizerHook);
* write and read checkpoints on request (main process writes, everyone waits).
"""

from __future__ import annotations

import logging
import math
import os
import os.path as osp
import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..hooks.hook import Hook
from ..hooks.table import HookTable
from ..logging.log_buffer import LogBuffer
from ..registry import RUNNERS


class Runner:
    def __init__(
        self,
        model: nn.Module,
        *,
        accelerator,
        work_dir: str,
        optimizer: torch.optim.Optimizer | None = None,
        criterion: nn.Module | None = None,
        data_loaders: dict[str, Iterable] | None = None,
        workflow: list[tuple[str, int]] | None = None,
        max_epochs: int | None = None,
        max_iters: int | None = None,
        logger: logging.Logger | None = None,
        cfg: Any = None,
        meta: dict | None = None,
        timestamp: str | None = None,
    ):
        if (max_epochs is None) == (max_iters is None):
            raise ValueError(
                "give exactly one of max_epochs (epoch-based) or max_iters (iter-based)"
            )
        self.model, self.optimizer, self.criterion = model, optimizer, criterion
        self.accelerator = accelerator
        self.work_dir = osp.abspath(work_dir)
        self.data_loaders = dict(data_loaders or {})
        self.workflow = [tuple(w) for w in (workflow or [("train", 1)])]
        self.by_epoch = max_epochs is not None
        self.max_epochs = max_epochs
        self._max_iters = max_iters
        self.logger = logger or logging.getLogger("acchooks")
        self.cfg, self.meta = cfg, dict(meta or {})
        from ..hooks.logger.text import now_timestamp

        self.timestamp = timestamp or now_timestamp()
        self._length_of: Iterable | None = None
        self._length = 0
        self._unwrapped_for: nn.Module | None = None
        self._unwrapped: nn.Module | None = None
        # fixed when the Accelerator is made; asked every iteration
        self._accumulating = getattr(accelerator, "gradient_accumulation_steps", 1) > 1
        self._own_steps_of: nn.Module | None = None
        self._own_steps: dict[str, bool] = {}
        self.hooks = HookTable()
        from .preemption import PreemptionHandler

        self.preemption = PreemptionHandler()
        self.log_buffer = LogBuffer(reduce=self._reduce_mean)
        self.epoch = self.iter = self.inner_iter = self.step = 0
        self.resume_inner_iter = 0  # batches of the current epoch done before a resume
        self.stage: str | None = None
        self.preempted: str | None = None  # the signal's name once a run stops for it
        self.mode = "train"
        self.data_batch: Any = None
        self.outputs: dict[str, Any] = {}
        self.data_loader: Iterable | None = None
        self.run_started: float | None = None  # time.perf_counter() when run() started
        self.hook_timing_log_every = 0  # log the hook timing table every N train log lines

    # ---------------------------------------------------------------- properties
    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def unwrapped_model(self) -> nn.Module:
        # unwrap_model costs ~0.1 ms in Accelerate (an uncached import lookup): once per model
        if self._unwrapped_for is not self.model:
            self._unwrapped = self.accelerator.unwrap_model(self.model)
            self._unwrapped_for = self.model
        return self._unwrapped

    @property
    def epoch_length(self) -> int:
        """Iterations in one epoch of the train loader (len() of a prepared loader is not
        free, and hooks ask every iteration)."""
        loader = self.data_loaders["train"]
        if self._length_of is not loader:
            self._length, self._length_of = len(loader), loader
        return self._length

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.epoch_length / self.accelerator.gradient_accumulation_steps)

    @property
    def max_iters(self) -> int:
        return self._max_iters if not self.by_epoch else self.max_epochs * self.epoch_length

    @property
    def max_steps(self) -> int:
        if self.by_epoch:
            return self.max_epochs * self.steps_per_epoch
        return math.ceil(self._max_iters / self.accelerator.gradient_accumulation_steps)

    def current_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups] if self.optimizer else []

    def current_momentum(self) -> list[float]:
        if not self.optimizer:
            return []
        return [
            g["betas"][0] if "betas" in g else g["momentum"]
            for g in self.optimizer.param_groups
            if "betas" in g or "momentum" in g
        ]

    def _reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes == 1:
            return t
        return self.accelerator.reduce(t.to(self.accelerator.device), "mean").cpu()

    # ---------------------------------------------------------------- hooks
    def register_hook(self, hook: Hook, priority: int | str | None = None) -> Hook:
        return self.hooks.register(hook, priority)

    def call_hook(self, stage: str) -> None:
        self.stage = stage
        self.hooks.call(stage, self)
        self.stage = None

    def _call_hook_timed(self, stage: str) -> None:
        """``call_hook`` with each hook timed: the sampled iterations (see HookTable)."""
        self.stage = stage
        self.hooks.call_timed(stage, self)
        self.stage = None

    def get_hook_info(self) -> str:
        return self.hooks.describe()

    def hook_timing_report(self, top: int | None = None) -> str:
        """Time spent per hook and stage since the run started (this process)."""
        wall = time.perf_counter() - self.run_started if self.run_started is not None else None
        return self.hooks.timing_report(wall, top=top)

    # ---------------------------------------------------------------- steps
    def _through_wrapper(self, method: str, *args: Any) -> Any:
        """Call ``unwrapped.<method>(*args)`` through the DDP/FSDP wrapper's forward, so
        the wrapper's gradient-sync bookkeeping still happens (Lightning does the same)."""
        inner = self.unwrapped_model
        fn = getattr(inner, method)
        if inner is self.model:
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
            return self.model()
        finally:
            restore()

    def _own_step(self, method: str) -> bool:
        """Whether the model defines ``train_step``/``val_step`` (asked once per model)."""
        model = self.unwrapped_model
        if self._own_steps_of is not model:
            self._own_steps = {m: hasattr(model, m) for m in ("train_step", "val_step")}
            self._own_steps_of = model
        return self._own_steps[method]

    def _run_model(self, batch: Any, train: bool) -> dict[str, Any]:
        method = "train_step" if train else "val_step"
        if self._own_step(method):
            with self.accelerator.autocast():
                out = self._through_wrapper(method, batch, self.optimizer)
            if not isinstance(out, dict) or "loss" not in out:
                raise TypeError(
                    f"{type(self.unwrapped_model).__name__}.{method} must return a "
                    f"dict with a 'loss' tensor, got {type(out).__name__}"
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
        inputs, targets = batch[0], batch[1]
        loss = self.criterion(self.model(inputs), targets)
        n = inputs.shape[0] if isinstance(inputs, torch.Tensor) else len(inputs)  # len() of a
        return {"loss": loss, "log_vars": {"loss": loss.detach()}, "num_samples": n}  # tensor: slow

    def train_step(self, batch: Any) -> dict[str, Any]:
        return self._run_model(batch, train=True)

    @torch.no_grad()
    def val_step(self, batch: Any) -> dict[str, Any]:
        return self._run_model(batch, train=False)

    # ---------------------------------------------------------------- phases
    def _start_epoch(self, mode: str, loader: Iterable) -> None:
        self.mode, self.data_loader = mode, loader
        self.model.train(mode == "train")
        self.log_buffer.clear()  # also bounds the history of long iteration-based runs
        if hasattr(loader, "set_epoch"):  # sample order is a function of (seed, epoch)
            loader.set_epoch(self.epoch)
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):  # augmentation: a function of (seed, epoch, index)
            dataset.set_epoch(self.epoch)

    def _train_iter(self, batch: Any) -> None:
        self.data_batch = batch
        hooks = self.hooks
        if hooks.train_countdown:  # hook timing samples ~1 iteration in N (HookTable)
            hooks.train_countdown -= 1
            call_hook = self.call_hook
        else:
            call_hook = self._call_hook_timed
        call_hook("before_train_iter")
        # with no accumulation, accumulate() only re-asserts sync_gradients=True (~20 us)
        if self._accumulating:
            with self.accelerator.accumulate(self.model):
                self._train_step_and_hooks(batch, call_hook)
        else:
            self._train_step_and_hooks(batch, call_hook)
        self.log_buffer.clear_output()
        self.iter += 1
        signum = self.preemption.requested(self.accelerator)
        if signum:
            self._stop_for_preemption(signum)

    def _train_step_and_hooks(self, batch: Any, call_hook) -> None:
        outputs = self.outputs = self.train_step(batch)
        self.log_buffer.update(outputs["log_vars"], outputs.get("num_samples", 1))
        call_hook("after_train_iter")

    def _stop_for_preemption(self, signum: int) -> None:
        import signal as _signal

        from .preemption import Preempted

        name = _signal.Signals(signum).name
        self.logger.warning(
            f"{name} received: saving a checkpoint at iteration {self.iter} "
            f"(epoch {self.epoch + 1}, batch {self.inner_iter + 1}) and stopping"
        )
        self.stage = "preempt"
        path = self.save_checkpoint(f"iter_{self.iter}")
        self.stage = None
        if self.is_main_process:
            import json

            from .preemption import MARKER

            with open(osp.join(self.work_dir, MARKER), "w") as f:
                json.dump(
                    {
                        "signal": name,
                        "checkpoint": path,
                        "epoch": self.epoch,
                        "iter": self.iter,
                        "step": self.step,
                    },
                    f,
                )
        raise Preempted(name, path)

    def _val_iter(self, batch: Any) -> None:
        self.data_batch = batch
        hooks = self.hooks
        if hooks.val_countdown:
            hooks.val_countdown -= 1
            call_hook = self.call_hook
        else:
            call_hook = self._call_hook_timed
        call_hook("before_val_iter")
        self.outputs = self.val_step(batch)
        self.log_buffer.update(self.outputs["log_vars"], self.outputs.get("num_samples", 1))
        call_hook("after_val_iter")

    def _resumed_batches(self, loader: Iterable) -> tuple[Iterable, int]:
        """The loader, minus the batches this epoch had consumed before a resume."""
        skip, self.resume_inner_iter = self.resume_inner_iter, 0
        if skip:
            return self.accelerator.skip_first_batches(loader, skip), skip
        return loader, 0

    def train(self, loader: Iterable) -> None:
        """One train epoch (epoch-based runs)."""
        self._start_epoch("train", loader)
        self.call_hook("before_train_epoch")
        batches, start = self._resumed_batches(loader)
        for i, batch in enumerate(batches, start=start):
            self.inner_iter = i
            self._train_iter(batch)
        self.call_hook("after_train_epoch")
        self.log_buffer.clear_output()
        self.epoch += 1

    def val(self, loader: Iterable, num_iters: int | None = None) -> None:
        """One val phase: the loss on the val set, no update, no metrics."""
        self._start_epoch("val", loader)
        self.call_hook("before_val_epoch")
        for i, batch in enumerate(loader):
            if num_iters is not None and i >= num_iters:
                break
            self.inner_iter = i
            self._val_iter(batch)
        self.call_hook("after_val_epoch")
        self.log_buffer.clear_output()
        self.mode = "train"

    def run(
        self,
        data_loaders: dict[str, Iterable] | None = None,
        workflow: list[tuple[str, int]] | None = None,
    ) -> None:
        if data_loaders is not None:
            self.data_loaders.update(data_loaders)
        if workflow is not None:
            self.workflow = [tuple(w) for w in workflow]
        for phase, _ in self.workflow:
            if phase not in ("train", "val"):
                raise ConfigError(f"workflow: unknown phase '{phase}' (use 'train' or 'val')")
            if phase not in self.data_loaders:
                raise ConfigError(f"workflow has a '{phase}' phase but data.{phase} is not set")
        os.makedirs(self.work_dir, exist_ok=True)
        target = f"{self.max_epochs} epochs" if self.by_epoch else f"{self.max_iters} iters"
        self.logger.info(
            f"Start running, work_dir: {self.work_dir}, workflow: {self.workflow}, max: {target}"
        )
        self.logger.info(self.get_hook_info())
        self.hooks.reset_timing()
        self.run_started = time.perf_counter()
        from .preemption import MARKER

        if self.is_main_process and osp.exists(osp.join(self.work_dir, MARKER)):
            os.remove(osp.join(self.work_dir, MARKER))  # this run supersedes the preempted one
        self.call_hook("before_run")
        self.preemption.install()
        from .preemption import Preempted

        try:
            if self.by_epoch:
                self._run_epochs()
            else:
                self._run_iters()
        except Preempted as e:
            self.preempted = e.signal_name  # after_run: loggers mark the run as killed
            self.call_hook("after_run")  # loggers flush and close their files
            self._log_hook_timing()
            self.accelerator.wait_for_everyone()  # exit together: launchers kill stragglers
            raise
        finally:
            self.preemption.uninstall()
        self.call_hook("after_run")
        self._log_hook_timing()
        self.accelerator.wait_for_everyone()

    def _log_hook_timing(self) -> None:
        if self.hooks.timing_enabled:
            self.logger.info(self.hook_timing_report())

    def _run_epochs(self) -> None:
        while self.epoch < self.max_epochs:
            for phase, n in self.workflow:
                for _ in range(n):
                    if phase == "train":
                        if self.epoch >= self.max_epochs:
                            break
                        self.train(self.data_loaders["train"])
                    else:
                        self.val(self.data_loaders["val"])

    def _run_iters(self) -> None:
        loader = self.data_loaders["train"]
        self._start_epoch("train", loader)
        batches, pos = self._resumed_batches(loader)
        it = iter(batches)
        self.call_hook("before_train_epoch")
        while self.iter < self.max_iters:
            for phase, n in self.workflow:
                if phase == "val":
                    self.val(self.data_loaders["val"], num_iters=n)
                    self.model.train()
                    continue
                for _ in range(n):
                    if self.iter >= self.max_iters:
                        break
                    try:
                        batch = next(it)
                    except StopIteration:  # a new pass over the data: the next epoch's order
                        self.epoch += 1
                        self._start_epoch("train", loader)
                        it, pos = iter(loader), 0
                        batch = next(it)
                    self.inner_iter, pos = pos, pos + 1
                    self._train_iter(batch)
        self.call_hook("after_train_epoch")

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(
        self,
        name: str,
        out_dir: str | None = None,
        save_optimizer: bool = True,
        update_latest: bool = True,
    ) -> str:
        from .checkpointing import save_training_state

        return save_training_state(
            self, name, out_dir=out_dir, save_optimizer=save_optimizer, update_latest=update_latest
        )

    def remove_checkpoint(self, path: str) -> None:
        """Remove a committed checkpoint. A collective: call it on every process."""
        from ..checkpoint import remove_checkpoint

        if self.is_main_process and osp.exists(path):
            remove_checkpoint(path)
        self.accelerator.wait_for_everyone()

    def resume(self, path: str) -> None:
        from .checkpointing import resume_training_state

        resume_training_state(self, path)

    def load_weights(self, path: str) -> None:
        from ..checkpoint.weights import load_weights

        load_weights(self, path)


@RUNNERS.register_module()
class EpochBasedRunner(Runner):
    """``runner = dict(type='EpochBasedRunner', max_epochs=N)``."""

    def __init__(self, model: nn.Module, *, max_epochs: int, **kwargs: Any):
        super().__init__(model, max_epochs=max_epochs, **kwargs)


@RUNNERS.register_module()
class IterBasedRunner(Runner):
    """``runner = dict(type='IterBasedRunner', max_iters=N)``."""

    def __init__(self, model: nn.Module, *, max_iters: int, **kwargs: Any):
        super().__init__(model, max_iters=max_iters, **kwargs)
