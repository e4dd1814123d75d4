"""The Runner: owns the loop and calls the hooks; the state it runs lives in its owners.

It never steps the optimizer, changes the lr, writes logs or decides when to save:
hooks do that. What it does:

* iterate the workflow phases (``[('train', 1), ('val', 1)]``) until ``max_epochs``
  train epochs (or ``max_iters`` train iterations) are done;
* run each batch through the model (:class:`~.model_step.ModelStep`), inside
  ``accelerator.accumulate(model)`` for train batches so DDP's no_sync covers backward;
* advance its :class:`~.train_state.TrainState` (``runner.state``) at the loop's points;
  ``runner.epoch``, ``iter``, ``inner_iter`` and ``step`` are read-only views of it;
* own the :class:`~.checkpointer.Checkpointer` (``runner.checkpointer``) that hooks,
  preemption and the CLI save and resume through.
"""

from __future__ import annotations

import logging
import os
import os.path as osp
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..hooks.hook import Hook
from ..hooks.logger.text import now_timestamp
from ..hooks.table import HookTable
from ..logging.log_buffer import LogBuffer
from ..registry import RUNNERS
from .checkpointer import Checkpointer
from .length import RunLength
from .loaders import shutdown_workers
from .model_step import ModelStep
from .preemption import MARKER, Preempted, PreemptionHandler, stop_for_preemption
from .train_state import TrainState, TrainStateViews


class Runner(RunLength, TrainStateViews):
    """mmcv's runner on an Accelerator: ``register_hook``, ``run``; see the module doc."""

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
        self.timestamp = timestamp or now_timestamp()
        self._unwrapped_for: nn.Module | None = None
        self._unwrapped: nn.Module | None = None
        # fixed when the Accelerator is made and asked often (Accelerate's is_main_process
        # builds a state object on each read, ~3 us)
        self._accumulating = getattr(accelerator, "gradient_accumulation_steps", 1) > 1
        self._world = getattr(accelerator, "num_processes", 1)
        self._is_main = bool(getattr(accelerator, "is_main_process", True))
        self.hooks = HookTable()
        self.state = TrainState()
        self.checkpointer = Checkpointer(self)
        self.preemption = PreemptionHandler()
        self.log_buffer = LogBuffer(reduce=self._reduce_mean)
        self._model_step = ModelStep(self)
        self.preempted: str | None = None  # the signal's name once a run stops for it
        self.mode, self.data_batch, self.data_loader = "train", None, None
        self.outputs: dict[str, Any] = {}
        self.run_started: float | None = None  # time.perf_counter() when run() started
        self.hook_timing_log_every = 0  # log the hook timing table every N train log lines

    def wrap_dataloaders(self, wrap: Callable[[Iterable], Iterable]) -> None:
        """Replace every data loader of the run, the workflow's and those hooks iterate
        (EvalHook's), by ``wrap(loader)``."""
        self.data_loaders = {k: wrap(v) for k, v in self.data_loaders.items()}
        for hook in self.hooks.hooks:
            hook.wrap_dataloaders(wrap)

    # ---------------------------------------------------------------- properties
    @property
    def is_main_process(self) -> bool:
        return self._is_main

    @property
    def unwrapped_model(self) -> nn.Module:
        # unwrap_model costs ~0.1 ms in Accelerate (an uncached import lookup): once per model
        if self._unwrapped_for is not self.model:
            # without torch.compile's wrapper too: parameter names carry no _orig_mod.
            self._unwrapped = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
            self._unwrapped_for = self.model
        return self._unwrapped

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
        """Call every hook at ``stage`` (the iteration stages call the table directly:
        one call less per stage on the hot path); then a save CheckpointHook asked for."""
        self.hooks.call(stage, self)
        self.checkpointer.save_requested()

    def get_hook_info(self) -> str:
        return self.hooks.describe()

    def hook_timing_report(self, top: int | None = None) -> str:
        """Time spent per hook and stage since the run started (this process)."""
        wall = time.perf_counter() - self.run_started if self.run_started is not None else None
        return self.hooks.timing_report(wall, top=top)

    # ---------------------------------------------------------------- steps
    def train_step(self, batch: Any) -> dict[str, Any]:
        return self._model_step.step(batch, train=True)

    @torch.no_grad()
    def val_step(self, batch: Any) -> dict[str, Any]:
        return self._model_step.step(batch, train=False)

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
        self.hooks.call("before_train_iter", self)
        self.hooks.call("before_train_forward", self)  # may replace data_batch (mixup)
        # with no accumulation, accumulate() only re-asserts sync_gradients=True (~20 us)
        if self._accumulating:
            with self.accelerator.accumulate(self.model):
                self._train_step_and_hooks(self.data_batch)
        else:
            self._train_step_and_hooks(self.data_batch)
        self.log_buffer.clear_output()
        self.state.end_iter()
        self.checkpointer.settle()  # a background save that finished: agreed on, or its error
        signum = self.preemption.requested(self.accelerator)
        if signum:
            stop_for_preemption(self, signum)

    def _train_step_and_hooks(self, batch: Any) -> None:
        outputs = self.outputs = self.train_step(batch)
        n = outputs.get("num_samples", 1)
        self.state.finish_batch(n * self._world)
        self.log_buffer.update(outputs["log_vars"], n)
        self.hooks.call("after_train_iter", self)
        self.checkpointer.save_requested()  # after every hook of the stage (EvalHook's too)

    def _val_iter(self, batch: Any) -> None:
        self.data_batch = batch
        self.hooks.call("before_val_iter", self)
        self.outputs = self.val_step(batch)
        self.log_buffer.update(self.outputs["log_vars"], self.outputs.get("num_samples", 1))
        self.hooks.call("after_val_iter", self)

    def _unfinished_batches(self, loader: Iterable) -> tuple[Iterable, int]:
        """The loader, minus the batches of this epoch already done (after a resume)."""
        done = self.state.batches_done
        dataset = getattr(loader, "dataset", None)
        if done and hasattr(dataset, "skip_batches"):  # streamed shards: start at batch `done`
            dataset.skip_batches(done)
            return loader, done
        if done:
            return self.accelerator.skip_first_batches(loader, done), done
        return loader, 0

    def train(self, loader: Iterable) -> None:
        """One train epoch (epoch-based runs)."""
        self._start_epoch("train", loader)
        self.call_hook("before_train_epoch")
        batches, start = self._unfinished_batches(loader)
        for i, batch in enumerate(batches, start=start):
            self.state.start_iter(i)
            self._train_iter(batch)
        self.state.finish_epoch()
        self.call_hook("after_train_epoch")
        self.log_buffer.clear_output()
        self.state.end_epoch()

    def val(self, loader: Iterable, num_iters: int | None = None) -> None:
        """One val phase: the loss on the val set, no update, no metrics."""
        self._start_epoch("val", loader)
        self.call_hook("before_val_epoch")
        for i, batch in enumerate(loader):
            if num_iters is not None and i >= num_iters:
                break
            self.state.start_iter(i)
            self._val_iter(batch)
        self.call_hook("after_val_epoch")
        self.log_buffer.clear_output()
        self.mode = "train"

    def _check_workflow(self) -> None:
        for phase, _ in self.workflow:
            if phase not in ("train", "val"):
                raise ConfigError(f"workflow: unknown phase '{phase}' (use 'train' or 'val')")
            if phase not in self.data_loaders:
                raise ConfigError(f"workflow has a '{phase}' phase but data.{phase} is not set")

    def run(
        self,
        data_loaders: dict[str, Iterable] | None = None,
        workflow: list[tuple[str, int]] | None = None,
    ) -> None:
        if data_loaders is not None:
            self.data_loaders.update(data_loaders)
        if workflow is not None:
            self.workflow = [tuple(w) for w in workflow]
        self._check_workflow()
        os.makedirs(self.work_dir, exist_ok=True)
        target = f"{self.max_epochs} epochs" if self.by_epoch else f"{self.max_iters} iters"
        self.logger.info(
            f"Start running, work_dir: {self.work_dir}, workflow: {self.workflow}, max: {target}"
        )
        self.logger.info(self.get_hook_info())
        self.hooks.reset_timing()
        self.run_started = time.perf_counter()
        if self.is_main_process and osp.exists(osp.join(self.work_dir, MARKER)):
            os.remove(osp.join(self.work_dir, MARKER))  # this run supersedes the preempted one
        self.call_hook("before_run")
        self.preemption.install()
        try:
            if self.by_epoch:
                self._run_epochs()
            else:
                self._run_iters()
        except Preempted as e:
            self.preempted = e.signal_name  # after_run: loggers mark the run as killed
            self._finish_run()  # loggers flush and close their files
            raise
        finally:
            self.checkpointer.close()  # a save in flight commits before the run ends
            self.preemption.uninstall()
            self.wrap_dataloaders(shutdown_workers)  # no workers outlive the run
        self._finish_run()

    def _finish_run(self) -> None:
        self.call_hook("after_run")
        if self.hooks.timing_enabled:
            self.logger.info(self.hook_timing_report())
        self.accelerator.wait_for_everyone()  # exit together: launchers kill stragglers

    def _run_epochs(self) -> None:
        while self.epoch < self.max_epochs and not self.stopping:  # request_stop: ends early
            for phase, n in self.workflow:
                for _ in range(n):
                    if phase == "train":
                        if self.epoch >= self.max_epochs or self.stopping:
                            break
                        self.train(self.data_loaders["train"])
                    else:
                        self.val(self.data_loaders["val"])

    def _run_iters(self) -> None:
        loader = self.data_loaders["train"]
        state = self.state
        self._start_epoch("train", loader)
        batches, pos = self._unfinished_batches(loader)
        it = iter(batches)
        self.call_hook("before_train_epoch")
        while self.iter < self.max_iters and not self.stopping:
            for phase, n in self.workflow:
                if phase == "val":
                    self.val(self.data_loaders["val"], num_iters=n)
                    self.model.train()
                    continue
                for _ in range(n):
                    if self.iter >= self.max_iters or self.stopping:
                        break
                    try:
                        batch = next(it)
                    except StopIteration:  # a new pass over the data: the next epoch's order
                        state.finish_epoch()
                        state.end_epoch()
                        self._start_epoch("train", loader)
                        it, pos = iter(loader), 0
                        batch = next(it)
                    state.start_iter(pos)
                    pos += 1
                    self._train_iter(batch)
        self.call_hook("after_train_epoch")

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
