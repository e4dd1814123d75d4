"""The one place acchooks touches Accelerate's internals, and why.

Everything else goes through Accelerate's public API. Two things it does not offer:

* **The micro-step counter.** ``Accelerator.step`` counts micro-batches inside
  ``accumulate()``; Accelerate syncs gradients (and the prepared optimizer really steps)
  when it reaches a multiple of ``gradient_accumulation_steps``. A resume in the middle
  of a window, and an iteration-based run whose ``max_iters`` ends inside one, must set
  it (:func:`set_micro_step`); mmcv's ``is_last_iter`` step has no public equivalent.
* **The plain optimizer step.** With accelerate 1.15 ``AcceleratedOptimizer.step`` calls
  ``is_lomo_available()`` twice per step, an uncached ``importlib.util.find_spec`` over
  ``sys.path`` (~80 us each on a 2-core CPU VM), and ``zero_grad`` calls
  ``inspect.signature`` (~14 us). :func:`direct_inner_optimizer` returns the inner torch
  optimizer when calling its ``step()``/``zero_grad(set_to_none=True)`` at a sync step is
  exactly what the wrapper would do (a plain ``AcceleratedOptimizer``, no GradScaler, not
  XLA, not LOMO), else None.

FSDP on CPU processes (Accelerate refuses it without a GPU-like device) sets Accelerate's
state the way Accelerate does on GPUs; that lives with the rest of FSDP in
:mod:`acchooks.runner.fsdp`.
"""

from __future__ import annotations

import inspect
from typing import Any


def set_micro_step(accelerator: Any, micro_step: int) -> None:
    """Set Accelerate's micro-step counter: the next ``accumulate()`` increments it and
    syncs when the result is a multiple of ``gradient_accumulation_steps``."""
    accelerator.step = micro_step


def direct_inner_optimizer(optimizer: Any, accelerator: Any) -> Any:
    """The inner optimizer when stepping it directly is equivalent (see the module
    docstring), else None."""
    from accelerate.optimizer import AcceleratedOptimizer
    from accelerate.utils import DistributedType

    if (
        type(optimizer) is not AcceleratedOptimizer
        or optimizer.scaler is not None
        or accelerator.distributed_type == DistributedType.XLA
    ):
        return None
    inner = optimizer.optimizer
    if type(inner).__module__.split(".")[0] == "lomo_optim":  # its step is a no-op there
        return None
    try:
        if "set_to_none" not in inspect.signature(inner.zero_grad).parameters:
            return None
    except (TypeError, ValueError):
        return None
    return inner
