"""PreciseBNHook: recompute BatchNorm statistics before evaluation (MMClassification's).

``custom_hooks = [dict(type='PreciseBNHook', num_samples=8192, interval=1,
priority='ABOVE_NORMAL')]``, as MMClassification 0.x's configs write it. Every
``interval`` train epochs, at ``after_train_epoch``, the model runs forward passes in
train mode (``no_grad``) over ``num_samples`` training samples with every BatchNorm's
momentum set to 1, and each BN layer's ``running_mean`` / ``running_var`` become the
plain average of the per-batch mean / (unbiased) variance over those batches: fvcore's
and pycls's ``update_bn_stats``, i.e. cumulative averaging. Parameters, every other
buffer and the BN momenta are unchanged; so is ``num_batches_tracked`` (mmcls lets
those forwards count as batches; here they are no training). BN layers in eval mode
(frozen) are left alone, and GroupNorm/InstanceNorm have nothing to recompute.

**Samples.** The first ``num_samples // global batch`` batches (at least one, at most an
epoch) of the epoch just trained, in its order and with its augmentation, read through
a separate iterator of the train loader's underlying ``DataLoader``: the Accelerate
wrapper's epoch counter and end-of-data state, the loader's generator and the global
RNGs (dropout, drop-path) are as they were, so the training that follows, and a resume,
are exactly those of a run without the hook. Batch mixing (``mixup``) is not applied.

**Processes.** As in mmcls: each process averages over its own batches (its shard of
them), then the averages are averaged across processes (one all-reduce per dtype), so
every process ends with the same statistics.

**Weights.** The statistics are those of the model that EvalHook evaluates: every hook's
``evaluation_weights`` context is entered around the forward passes, so with an EMAHook
(``evaluate_with_ema=True``) they are computed with the EMA weights, as in mmcls where
EMAHook has swapped them in by then; the EMA's buffer copy takes them.

**Order.** It must run before EvalHook (LOW): a priority after it is a config error.
MMClassification's configs give ``priority='ABOVE_NORMAL'``; ``custom_hooks`` without one
register it at NORMAL (mmcv's rule), after CheckpointHook, which is fine: checkpoints
are written once every hook of the stage has run, so they hold the new statistics.
Epoch-based runs only (mmcls asserts it too).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, closing, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..config.checks import positive_int
from ..config.optionset import Option, OptionSet
from ..errors import ConfigError
from ..registry import HOOKS
from .hook import Hook
from .priority import Priority, priority_name

if TYPE_CHECKING:
    from ..runner.runner import Runner

OPTIONS = OptionSet(
    "PreciseBNHook",
    [
        Option("num_samples", positive_int, 8192, "training samples, all processes together"),
        Option("interval", positive_int, 1, "every N train epochs"),
    ],
    "``dict(type='PreciseBNHook', num_samples=8192, interval=1)`` (MMClassification's).",
)


@HOOKS.register_module()
class PreciseBNHook(Hook):
    """``custom_hooks=[dict(type='PreciseBNHook', num_samples=8192, interval=1)]``: every
    ``interval`` epochs, BatchNorm statistics recomputed as the exact average over
    ``num_samples`` training samples, before evaluation (see the module docstring)."""

    priority = Priority.ABOVE_NORMAL

    def __init__(self, num_samples: int = 8192, interval: int = 1) -> None:
        OPTIONS.check(dict(num_samples=num_samples, interval=interval), "PreciseBNHook")
        self.num_samples, self.interval = num_samples, interval

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "PreciseBNHook") -> list[str]:
        """Every problem of the hook's arguments, found before anything is built."""
        return OPTIONS.problems(cfg, path)

    def before_run(self, runner: Runner) -> None:
        where = f"custom_hooks (PreciseBNHook, priority {priority_name(self.priority)})"
        if not runner.by_epoch:
            raise ConfigError(
                f"{where}: only epoch-based runs (runner=dict(type='EpochBasedRunner')), "
                f"as in MMClassification"
            )
        order = [h for h in runner.hooks.hooks if type(h).implements("after_train_epoch")]
        before = [type(h).__name__ for h in order[: order.index(self)]]
        if "EvalHook" in before:
            raise ConfigError(
                f"{where}: runs after EvalHook (LOW) at after_train_epoch, so the evaluation "
                f"would not see the recomputed statistics; use a priority before LOW, "
                f"e.g. 'ABOVE_NORMAL' (MMClassification's)"
            )

    def after_train_epoch(self, runner: Runner) -> None:
        if self.every_n_epochs(runner, self.interval):
            self.update(runner)

    def update(self, runner: Runner) -> None:
        """Recompute the statistics now, with the weights evaluation uses."""
        loader = runner.data_loaders["train"]
        world = runner.accelerator.num_processes
        per_step = getattr(loader, "total_batch_size", None) or _batch_size(loader) * world
        num_iter = min(max(1, self.num_samples // per_step), len(loader))
        with ExitStack() as stack:
            for hook in runner.hooks.hooks:
                stack.enter_context(hook.evaluation_weights(runner))
            batches = _batches(loader, runner.accelerator.device)
            # closed at once: a non-persistent iterator's worker processes stop
            with _untouched_rng(), _epoch_order(loader, runner.epoch), closing(batches):
                found = update_bn_stats(
                    runner.model, runner.train_step, batches, num_iter, runner.accelerator
                )
        runner.logger.info(
            f"PreciseBN (epoch {runner.epoch + 1}): {found} BN layers, statistics averaged "
            f"over {num_iter} batches ({num_iter * per_step} samples)"
            if found
            else "PreciseBN: no BatchNorm layer in train mode; nothing recomputed"
        )


@torch.no_grad()
def update_bn_stats(
    model: nn.Module, forward: Any, batches: Iterable, num_iter: int, accelerator: Any
) -> int:
    """Set the running statistics of ``model``'s BN layers in train mode to the mean of
    the per-batch statistics of ``num_iter`` batches, each run through ``forward``,
    then averaged across processes; returns the number of BN layers (every process
    must call it, with the same ``num_iter``)."""
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training]
    bns = [m for m in bns if m.running_mean is not None and m.running_var is not None]
    if not bns:
        return 0
    means = [torch.zeros_like(bn.running_mean) for bn in bns]
    variances = [torch.zeros_like(bn.running_var) for bn in bns]
    momenta = [bn.momentum for bn in bns]
    tracked = [bn.num_batches_tracked.clone() for bn in bns if bn.num_batches_tracked is not None]
    try:
        for bn in bns:
            bn.momentum = 1.0  # running stats = this batch's
        for batch in itertools.islice(batches, num_iter):
            forward(batch)
            for i, bn in enumerate(bns):
                means[i] += bn.running_mean / num_iter  # mmcls's (pycls's) arithmetic
                variances[i] += bn.running_var / num_iter
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
        counted = [bn for bn in bns if bn.num_batches_tracked is not None]
        for bn, n in zip(counted, tracked, strict=True):
            bn.num_batches_tracked.copy_(n)
    if accelerator.num_processes > 1:
        means, variances = _mean_across_processes(means), _mean_across_processes(variances)
    for bn, mean, var in zip(bns, means, variances, strict=True):
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    return len(bns)


def _mean_across_processes(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    from accelerate.utils import reduce
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    flat = reduce(_flatten_dense_tensors(tensors), "mean")
    return list(_unflatten_dense_tensors(flat, tensors))


def _base(loader: Any) -> Any:
    """The torch DataLoader under Accelerate's wrapper (and the dry run's cut)."""
    return getattr(loader, "base_dataloader", loader)


def _batch_size(loader: Any) -> int:
    base = _base(loader)
    size = getattr(base, "batch_size", None) or getattr(base.batch_sampler, "batch_size", 1)
    return int(size)


def _batches(loader: Any, device: torch.device) -> Iterator[Any]:
    """A new iterator of the loader's DataLoader, batches moved to ``device``."""
    from accelerate.utils import send_to_device

    for batch in _base(loader):
        yield send_to_device(batch, device)


@contextmanager
def _epoch_order(loader: Any, epoch: int) -> Iterator[None]:
    """Within the block the loader yields ``epoch``'s order; its epoch counter, and its
    generator (worker seeds), are restored after."""
    generator = getattr(_base(loader), "generator", None)
    saved_gen = generator.get_state() if generator is not None else None
    saved_epoch = getattr(loader, "iteration", None)  # Accelerate's: the next epoch
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    try:
        yield
    finally:
        if saved_epoch is not None:
            loader.set_epoch(saved_epoch)
        if saved_gen is not None:
            generator.set_state(saved_gen)


@contextmanager
def _untouched_rng() -> Iterator[None]:
    """Python's, NumPy's, torch's and CUDA's global RNG states restored after the block."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    gpu = torch.cuda.get_rng_state_all() if cuda else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if gpu is not None:
            torch.cuda.set_rng_state_all(gpu)
