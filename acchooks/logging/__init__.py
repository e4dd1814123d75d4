from .log_buffer import LogBuffer
from .logger import get_logger

__all__ = ["LogBuffer", "get_logger"]
