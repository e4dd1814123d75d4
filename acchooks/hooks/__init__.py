"""Hooks: the contract (stages, priority, Hook, the dispatch table) and the built-ins."""

from .checkpoint import CheckpointHook
from .early_stopping import EarlyStoppingHook
from .ema import EMAHook
from .empty_cache import EmptyCacheHook
from .evaluation import EvalHook
from .hook import Hook
from .iter_timer import IterTimerHook
from .logger import LoggerHook, TensorboardLoggerHook, TextLoggerHook
from .mixup import MixupHook
from .optimizer import OptimizerHook
from .param_scheduler import LrUpdaterHook, MomentumUpdaterHook
from .plateau import ReduceLROnPlateauLrUpdaterHook
from .precise_bn import PreciseBNHook
from .priority import Priority, get_priority
from .profiler import ProfilerHook
from .progress import ProgressBarHook
from .stages import STAGES
from .sync_buffers import SyncBuffersHook
from .table import HookTable

__all__ = [
    "Hook",
    "HookTable",
    "Priority",
    "get_priority",
    "STAGES",
    "CheckpointHook",
    "EvalHook",
    "IterTimerHook",
    "LoggerHook",
    "TextLoggerHook",
    "TensorboardLoggerHook",
    "OptimizerHook",
    "LrUpdaterHook",
    "ReduceLROnPlateauLrUpdaterHook",
    "EarlyStoppingHook",
    "MomentumUpdaterHook",
    "EMAHook",
    "MixupHook",
    "SyncBuffersHook",
    "EmptyCacheHook",
    "ProfilerHook",
    "ProgressBarHook",
    "PreciseBNHook",
]
