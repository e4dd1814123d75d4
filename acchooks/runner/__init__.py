"""The runner (the loop), its owners (TrainState, Checkpointer) and the builder."""

from .builder import build_runner
from .runner import EpochBasedRunner, IterBasedRunner, Runner

__all__ = ["Runner", "EpochBasedRunner", "IterBasedRunner", "build_runner"]
