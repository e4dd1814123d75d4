"""The run's logger (console + ``<timestamp>.log``) and the log buffer hooks write to."""

from .log_buffer import LogBuffer
from .logger import get_logger

__all__ = ["LogBuffer", "get_logger"]
