# WandbLoggerHook and MlflowLoggerHook import wandb/mlflow (optional extras) only when a
# run starts, so importing acchooks never imports them.
from .base import LoggerHook
from .mlflow import MlflowLoggerHook
from .tensorboard import TensorboardLoggerHook
from .text import TextLoggerHook
from .wandb import WandbLoggerHook

__all__ = [
    "LoggerHook",
    "TextLoggerHook",
    "TensorboardLoggerHook",
    "WandbLoggerHook",
    "MlflowLoggerHook",
]
