"""MMClassification 0.x annotations: ``classes`` (a list or a file), ``ann_file`` lines
``<path> <label>`` relative to ``data_prefix``, or a scan of ``data_prefix/<class>/``.

Each reader returns ``(result, problems)``: every problem is one line naming the key, the
file and, for an annotation file, the line number, so that the config check can report
them all before any heavy work starts (and the dataset raise them if built unchecked).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import did_you_mean

MAX_SHOWN = 5  # bad lines reported one by one; the rest are counted
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif")  # mmcls's default


def missing_path(path: str, what: str, key: str) -> str | None:
    """A problem line when ``path`` does not exist (relative paths: from the cwd)."""
    if os.path.exists(path):
        return None
    return f"{key}: {what} not found: {path} (relative paths start from {os.getcwd()})"


def read_lines(path: str) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-empty lines (mmcv's list_from_file)."""
    with open(path, encoding="utf-8") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]


def read_classes(classes: Any, default: Sequence[str] | None, key: str) -> tuple[Any, list[str]]:
    """mmcls's ``get_classes``: None (the dataset's own), a list/tuple, or a file with one
    class name per line."""
    if classes is None:
        return (list(default) if default is not None else None), []
    if isinstance(classes, (list, tuple)):
        if not all(isinstance(c, str) for c in classes):
            return None, [f"{key}: expected class names (strings), got {list(classes)!r}"]
        return list(classes), []
    if isinstance(classes, (str, os.PathLike)):
        path = os.fspath(os.path.expanduser(classes))
        missing = missing_path(path, "classes file (one class name per line)", key)
        if missing:
            return None, [missing]
        return [text for _, text in read_lines(path)], []
    return None, [f"{key}: expected a list of class names or a file path, got {classes!r}"]


def _label(text: str, classes: list[str] | None) -> tuple[int | None, str | None]:
    """A label index from an integer or (with ``classes``) a class name."""
    try:
        label = int(text)
    except ValueError:
        if classes is None:
            return None, f"label {text!r} is not an integer (give `classes` to use names)"
        if text not in classes:
            return None, f"class {text!r} is not in `classes`{did_you_mean(text, classes)}"
        return classes.index(text), None
    if classes is not None and not 0 <= label < len(classes):
        return None, f"label {label} out of range for {len(classes)} classes (0-{len(classes) - 1})"
    if label < 0:
        return None, f"label {label} is negative"
    return label, None


def _shown(bad: list[str], key: str, ann_file: str) -> list[str]:
    more = len(bad) - MAX_SHOWN
    tail = [f"{key}: {ann_file}: and {more} more bad line(s)"] if more > 0 else []
    return [f"{key}: {ann_file} {b}" for b in bad[:MAX_SHOWN]] + tail


def read_ann_file(
    ann_file: str, data_prefix: str, classes: list[str] | None, key: str
) -> tuple[list[tuple[str, int]], list[str]]:
    """Samples ``(full path, label)`` from lines ``<path relative to data_prefix> <label>``
    (split at the last space, as mmcls). A line naming a missing file, a label out of
    range or a class not in ``classes`` is a problem naming its line number."""
    missing = missing_path(ann_file, "annotation file", key)
    if missing:
        return [], [missing]
    samples, bad = [], []
    for n, text in read_lines(ann_file):
        parts = text.rsplit(" ", 1)
        if len(parts) != 2:
            bad.append(f"line {n}: {text!r}: expected '<path> <label>'")
            continue
        label, problem = _label(parts[1], classes)
        full = os.path.join(data_prefix, parts[0])
        if problem is None and not os.path.isfile(full):
            problem = f"image not found: {full}"
        if problem is not None:
            bad.append(f"line {n}: {text!r}: {problem}")
            continue
        samples.append((full, label))
    if not samples and not bad:
        bad.append("has no annotation lines ('<path> <label>')")
    return samples, _shown(bad, key, ann_file)


def scan_folders(
    data_prefix: str, extensions: Sequence[str], classes: list[str] | None, key: str
) -> tuple[list[tuple[str, int]], list[str], list[str]]:
    """mmcls's folder layout ``data_prefix/<class>/**/<image>``: samples, the folder
    names (sorted: label order) and problems."""
    exts = tuple(e.lower() for e in extensions)
    layout = "expected data_prefix/<class>/<image> folders (or give ann_file)"
    if not os.path.isdir(data_prefix):
        return [], [], [f"{key}: data folder not found: {data_prefix}; {layout}"]
    folders = sorted(e.name for e in os.scandir(data_prefix) if e.is_dir())
    samples = []
    for label, folder in enumerate(folders):
        for root, _, files in sorted(os.walk(os.path.join(data_prefix, folder), followlinks=True)):
            samples += [
                (os.path.join(root, f), label) for f in sorted(files) if f.lower().endswith(exts)
            ]
    if not samples:
        return [], folders, [f"{key}: no images ({', '.join(exts)}) in {data_prefix}; {layout}"]
    if classes is not None and len(classes) != len(folders):
        return (
            [],
            folders,
            [
                f"{key}: {len(folders)} class folder(s) in {data_prefix} but {len(classes)} "
                f"`classes`; give as many classes as folders (label = sorted folder order)"
            ],
        )
    return samples, folders, []
