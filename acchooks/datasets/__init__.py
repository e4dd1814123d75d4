"""Built-in datasets, registered in ``DATASETS`` on import."""

from __future__ import annotations

from .arrays import CIFAR10, CIFAR100, MNIST, FashionMNIST
from .image_folder import ImageFolder
from .mmcls import CustomDataset, ImageNet
from .shapes import SHAPE_KINDS, Shapes, generate_shapes
from .timm_dataset import TimmDataset
from .voc import VOC
from .webdataset import WdsShards

__all__ = ["SHAPE_KINDS", "ImageFolder", "Shapes", "generate_shapes"]
__all__ += ["CIFAR10", "CIFAR100", "MNIST", "VOC", "CustomDataset", "FashionMNIST", "ImageNet"]
__all__ += ["TimmDataset", "WdsShards"]
