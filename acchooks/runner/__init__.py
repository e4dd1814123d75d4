from .builder import build_runner
from .runner import EpochBasedRunner, IterBasedRunner, Runner

__all__ = ["Runner", "EpochBasedRunner", "IterBasedRunner", "build_runner"]
