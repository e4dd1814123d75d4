"""MMClassification 0.x's ``VOC``: Pascal VOC2007 as a multi-label dataset.

Layout under ``data_prefix``: ``JPEGImages/<id>.jpg`` and ``Annotations/<id>.xml``; the
``ann_file`` (e.g. ``ImageSets/Main/trainval.txt``) lists one image id per line. The
target of an image is a ``(num_classes,)`` float vector, as mmcls builds it: 1 for each
class with a non-difficult object, and for a class whose objects are all ``difficult``:
-1 (``difficult_as_postive=None``, the default: ignored by mAP, and a positive in
``CrossEntropyLoss(use_sigmoid=True)``, as mmcls's multi-label head takes ``abs``), 1
(True) or 0 (False). Objects whose name is not in ``classes`` are ignored, as in mmcls
(the count is logged). Use with the multi-label metrics (``mAP``, ``CP``, ``CR``, ``CF1``,
``OP``, ``OR``, ``OF1``).
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import ConfigError
from ..registry import DATASETS
from .annotations import MAX_SHOWN, missing_path, read_classes, read_lines
from .mmcls import FileDataset, common_problems

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def _objects(xml_path: str) -> list[tuple[str, bool]]:
    root = ET.parse(xml_path).getroot()
    found = []
    for obj in root.findall("object"):
        name, difficult = obj.find("name"), obj.find("difficult")
        hard = difficult is not None and int(difficult.text or 0) != 0
        found.append(((name.text or "").strip() if name is not None else "", hard))
    return found


def _target(objects: list[tuple[str, bool]], classes: list[str], as_positive: Any) -> list[float]:
    target = [0.0] * len(classes)
    index = {c: i for i, c in enumerate(classes)}
    fill = -1.0 if as_positive is None else 1.0 if as_positive else 0.0
    for name, hard in objects:  # difficult first, then positives (mmcls's order)
        if hard and name in index:
            target[index[name]] = fill
    for name, hard in objects:
        if not hard and name in index:
            target[index[name]] = 1.0
    return target


def _voc_samples(cfg: Mapping[str, Any], path: str) -> tuple[list, list, int, list[str]]:
    """``(samples, classes, ignored objects, problems)``; each bad id names its line."""
    classes, problems = read_classes(cfg.get("classes"), VOC_CLASSES, f"{path}.classes")
    ann = cfg.get("ann_file")
    if ann is None:
        problems.append(f"{path}.ann_file: missing (e.g. ImageSets/Main/trainval.txt)")
    elif missing_path(os.fspath(ann), "image id list", f"{path}.ann_file"):
        problems.append(missing_path(os.fspath(ann), "image id list", f"{path}.ann_file"))
    if problems:
        return [], [], 0, problems
    prefix = os.path.expanduser(os.fspath(cfg["data_prefix"]))
    samples, bad, ignored = [], [], 0
    for n, img_id in read_lines(os.fspath(ann)):
        image = os.path.join(prefix, "JPEGImages", f"{img_id}.jpg")
        xml = os.path.join(prefix, "Annotations", f"{img_id}.xml")
        missing = [p for p in (image, xml) if not os.path.isfile(p)]
        if missing:
            bad.append(f"line {n}: {img_id!r}: not found: {', '.join(missing)}")
            continue
        try:
            objects = _objects(xml)
        except (ET.ParseError, ValueError) as e:
            bad.append(f"line {n}: {img_id!r}: cannot parse {xml} ({e})")
            continue
        ignored += sum(name not in classes for name, _ in objects)
        samples.append((image, _target(objects, classes, cfg.get("difficult_as_postive"))))
    more = (
        [f"{path}.ann_file: {ann}: and {len(bad) - MAX_SHOWN} more"] if len(bad) > MAX_SHOWN else []
    )
    return (
        samples,
        classes,
        ignored,
        [f"{path}.ann_file: {ann} {b}" for b in bad[:MAX_SHOWN]] + more,
    )


@DATASETS.register_module()
class VOC(FileDataset):
    """mmcls's VOC (module docstring); ``__getitem__`` gives ``(tensor, (C,) float)``."""

    CLASSES = VOC_CLASSES
    multi_label = True  # multi-hot targets: sigmoid scores (acchooks predict)

    def __init__(
        self,
        data_prefix: str,
        ann_file: str,
        pipeline: Sequence[Mapping[str, Any]] = (),
        classes: str | Sequence[str] | None = None,
        difficult_as_postive: bool | None = None,
        test_mode: bool = False,
        file_client_args: dict | None = None,
        skip_corrupt: bool = False,
    ):
        cfg = dict(data_prefix=data_prefix, ann_file=ann_file, pipeline=pipeline, classes=classes)
        cfg.update(difficult_as_postive=difficult_as_postive, file_client_args=file_client_args)
        problems = self.check_config(cfg, "VOC")
        if problems:
            raise ConfigError(problems)
        samples, self.classes, ignored, _ = _voc_samples(cfg, "VOC")
        if ignored:
            logging.getLogger("acchooks").warning(
                f"VOC: {ignored} object(s) in {data_prefix}/Annotations have a name not in "
                f"classes and are ignored (as in MMClassification)"
            )
        self.samples = [(p, torch.tensor(t)) for p, t in samples]
        self.data_prefix, self.ann_file, self.test_mode = data_prefix, ann_file, test_mode
        self.difficult_as_postive = difficult_as_postive
        self.CLASSES = self.classes
        self._setup(pipeline, skip_corrupt)

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str = "dataset") -> list[str]:
        """Keys, pipeline, classes, and every listed id's image and XML annotation."""
        problems = common_problems(cls, cfg, path)
        return problems or _voc_samples(cfg, path)[3]
