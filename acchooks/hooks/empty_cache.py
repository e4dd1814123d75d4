"""EmptyCacheHook: release the accelerator's cached memory (mmcv's arguments).

``custom_hooks = [dict(type='EmptyCacheHook', after_iter=True)]``. Calls Accelerate's
``clear_device_cache``, which knows CUDA, XPU, NPU, MLU, MPS, ...; on a CPU it does
nothing. Useful when memory is fragmented, e.g. between train and val phases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import HOOKS
from .hook import Hook
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


def _clear() -> None:
    from accelerate.utils.memory import clear_device_cache

    clear_device_cache(garbage_collection=False)


@HOOKS.register_module()
class EmptyCacheHook(Hook):
    """``dict(type='EmptyCacheHook', before_epoch=False, after_epoch=True, after_iter=False)``:
    release the accelerator's cached memory at the chosen points (Accelerate's
    ``clear_device_cache``)."""

    priority = Priority.NORMAL

    def __init__(
        self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False
    ):
        self._before_epoch, self._after_epoch, self._after_iter = (
            before_epoch,
            after_epoch,
            after_iter,
        )
        self.calls = 0  # how often the cache was released (for tests and curiosity)

    def _release(self) -> None:
        _clear()
        self.calls += 1

    def before_epoch(self, runner: Runner) -> None:
        if self._before_epoch:
            self._release()

    def after_epoch(self, runner: Runner) -> None:
        if self._after_epoch:
            self._release()

    def after_iter(self, runner: Runner) -> None:
        if self._after_iter:
            self._release()
