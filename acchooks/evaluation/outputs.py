"""Per-sample evaluation outputs: what ``acchooks test --out-samples DIR`` writes and
``acchooks metrics`` / ``acchooks confusion-matrix`` read back.

``DIR/samples.safetensors`` holds the tensors, one row per sample in dataset order:

* ``scores`` float32 ``(N, C)``: the softmax (single-label) or sigmoid (multi-label)
  scores the metrics were computed from (:func:`~acchooks.evaluation.predict.predict`);
* ``targets``: int64 ``(N,)`` class indices, or float32 ``(N, C)`` multi-hot targets
  (1 positive, 0 negative, -1 difficult);
* ``indices`` int64 ``(N,)``: each sample's index in the dataset.

``DIR/samples.json`` holds the rest: the file path of each sample relative to the
dataset's root (where the dataset has files), the class names, the metrics and their
options, the results ``acchooks test`` computed, the config, checkpoint and weights.
Neither file is a pickle: ``safetensors.torch.load_file`` and ``json.load`` read them.
"""

from __future__ import annotations

import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import RunError

TENSORS_FILE = "samples.safetensors"
META_FILE = "samples.json"
FORMAT = "acchooks-eval-samples"
VERSION = 1


class WithIndex(Dataset):
    """``dataset`` whose samples also carry their index: ``(image, target, index)``, so
    :func:`~acchooks.evaluation.predict.predict` gathers the indices with the scores."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        image, target = self.dataset[index]
        return image, target, index


def sample_paths(dataset: Any) -> list[str] | None:
    """Each sample's file relative to the dataset's root (``samples`` / ``imgs`` under
    ``root`` as torchvision's ImageFolder, or under ``data_prefix`` as mmcls's
    CustomDataset / ImageNet / VOC), or None for a dataset without files."""
    samples = getattr(dataset, "samples", None) or getattr(dataset, "imgs", None)
    if not isinstance(samples, (list, tuple)) or not samples:
        return None
    root = getattr(dataset, "root", None) or getattr(dataset, "data_prefix", None)
    paths = []
    for s in samples:
        path = os.fspath(s[0] if isinstance(s, (list, tuple)) else s)
        paths.append(osp.relpath(path, os.fspath(root)) if root else path)
    return paths


def class_names(dataset: Any) -> list[str] | None:
    """The dataset's class names (``classes``, or mmcls's ``CLASSES``), if it has them."""
    names = getattr(dataset, "classes", None) or getattr(dataset, "CLASSES", None)
    return [str(n) for n in names] if names else None


def in_dataset_order(
    scores: torch.Tensor, targets: torch.Tensor, indices: list[torch.Tensor], size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``scores``, ``targets`` and the gathered ``indices`` sorted by index; a RunError
    if a sample of the ``size`` is there twice (all are there, unless the loader has
    ``drop_last``)."""
    index = torch.cat(indices).long() if indices else torch.zeros(0, dtype=torch.long)
    order = index.argsort(stable=True)
    index = index[order]
    if len(index) != len(index.unique()) or (len(index) and not 0 <= index[0] <= index[-1] < size):
        raise RunError(
            f"evaluation gathered {len(index)} samples ({len(index.unique())} distinct) of a "
            f"dataset of {size}: each sample must be evaluated once"
        )
    return scores[order].contiguous(), targets[order].contiguous(), index


@dataclass
class EvalSamples:
    """Per-sample scores, targets and dataset indices, with the JSON metadata ``meta``
    (class names, paths, metrics and their options, checkpoint, results)."""

    scores: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        """Whether the targets are multi-hot ``(N, C)`` (sigmoid scores)."""
        return self.targets.dim() == 2 and self.targets.shape == self.scores.shape

    @property
    def classes(self) -> list[str]:
        """The class names, or ``class-<c>`` where the dataset had none."""
        names = self.meta.get("classes")
        return list(names) if names else [f"class-{c}" for c in range(self.scores.size(1))]

    def save(self, directory: str) -> list[str]:
        """Write ``samples.safetensors`` and ``samples.json`` to ``directory``; their paths."""
        from safetensors.torch import save_file

        os.makedirs(directory, exist_ok=True)
        tensors = osp.join(directory, TENSORS_FILE)
        meta = osp.join(directory, META_FILE)
        save_file(
            {"scores": self.scores, "targets": self.targets, "indices": self.indices},
            tensors + ".tmp",
        )
        with open(meta + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "version": VERSION, **self.meta}, f, indent=1)
        os.replace(tensors + ".tmp", tensors)
        os.replace(meta + ".tmp", meta)
        return [tensors, meta]


def load_samples(directory: str, what: str = "--results") -> EvalSamples:
    """The outputs ``acchooks test --out-samples`` wrote to ``directory``; a ToolError
    naming ``what`` and the file when they are missing or do not fit together."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..tools import ToolError

    hint = "give the folder written by `acchooks test --out-samples DIR`"
    for name in (META_FILE, TENSORS_FILE):
        if not osp.isfile(osp.join(directory, name)):
            raise ToolError(f"{what} {directory}: no {name} in it; {hint}")
    try:
        with open(osp.join(directory, META_FILE), encoding="utf-8") as f:
            meta = json.load(f)
        tensors = load_file(osp.join(directory, TENSORS_FILE))
    except (ValueError, OSError, SafetensorError) as e:
        raise ToolError(f"{what} {directory}: cannot be read ({e}); {hint}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ToolError(f"{what} {directory}/{META_FILE}: not an acchooks samples file; {hint}")
    missing = [k for k in ("scores", "targets", "indices") if k not in tensors]
    if missing:
        raise ToolError(f"{what} {directory}/{TENSORS_FILE}: no tensor {missing[0]!r}; {hint}")
    out = EvalSamples(tensors["scores"], tensors["targets"], tensors["indices"], meta)
    n = out.scores.size(0) if out.scores.dim() == 2 else -1
    if n < 0 or len(out.targets) != n or out.indices.shape != (n,):
        raise ToolError(
            f"{what} {directory}/{TENSORS_FILE}: expected scores (N, C), targets (N,) or "
            f"(N, C) and indices (N,); got {tuple(out.scores.shape)}, "
            f"{tuple(out.targets.shape)}, {tuple(out.indices.shape)}"
        )
    return out
