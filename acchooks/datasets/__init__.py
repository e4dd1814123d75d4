"""Built-in datasets, registered in ``DATASETS`` on import."""

from __future__ import annotations

from .image_folder import ImageFolder
from .shapes import SHAPE_KINDS, Shapes, generate_shapes

__all__ = ["SHAPE_KINDS", "ImageFolder", "Shapes", "generate_shapes"]
