"""The index of WebDataset tar shards (:mod:`acchooks.datasets.webdataset`): which files a
``root`` names, and each sample's image offset, size and label, read from the tar headers
without decoding an image."""

from __future__ import annotations

import json
import os
import posixpath
import re
import tarfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
LABEL_EXTS = ("cls", "cls.txt", "label", "json")


def expand_braces(pattern: str) -> list[str]:
    """``a{0..2}b{x,y}`` -> ``a0bx, a0by, a1bx, ...`` (zero-padded ranges: ``{000..009}``)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if m is None:
        return [pattern]
    head, body, tail = pattern[: m.start()], m.group(1), pattern[m.end() :]
    r = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if r:
        a, b = r.groups()
        padded = (len(a) > 1 and a[0] == "0") or (len(b) > 1 and b[0] == "0")
        width = max(len(a), len(b)) if padded else 0
        step = 1 if int(b) >= int(a) else -1
        options = [str(i).zfill(width) for i in range(int(a), int(b) + step, step)]
    else:
        options = body.split(",")
    return [head + o + t for o in options for t in expand_braces(tail)]


def shard_paths(root: Any) -> tuple[list[str], list[str]]:
    """The shard files of ``root`` and the problems found (missing files, no shards)."""
    if not isinstance(root, (str, os.PathLike)):
        return [], [f"root: expected a tar, a folder of tars or a brace pattern, found {root!r}"]
    root = os.fspath(root)
    if os.path.isdir(root):
        paths = sorted(os.path.join(root, f) for f in os.listdir(root) if f.endswith(".tar"))
        return paths, [] if paths else [f"root: no .tar shards in the folder {root}"]
    paths = expand_braces(root)
    missing = [p for p in paths if not os.path.isfile(p)]
    if len(missing) == len(paths):
        return [], [
            f"root: '{root}' matches no shard file (relative paths start from {os.getcwd()})"
        ]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        return [], [f"root: '{root}': shard files not found: {shown}"]
    return paths, []


def _find(members: Mapping[str, tarfile.TarInfo], exts: Sequence[str]) -> Any:
    """The member of the first of ``exts`` that ends an extension (``b.jpg``: ``jpg``)."""
    for e in exts:
        for ext, m in members.items():
            if ext == e or ext.endswith("." + e):
                return m
    return None


def _label(data: bytes, is_json: bool, where: str) -> int:
    try:
        value = json.loads(data)["label"] if is_json else data.decode().strip()
        return int(value)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ConfigError(f"{where}: expected a class index, found {data[:40]!r}") from None


def index_shard(path: str) -> tuple[list[str], np.ndarray]:
    """The keys of ``path``'s samples and an int64 array of (image offset, size, label)."""
    groups: dict[str, dict[str, tarfile.TarInfo]] = {}
    rows = []
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                base = posixpath.basename(m.name)
                if m.isfile() and not base.startswith("."):
                    stem, _, ext = base.partition(".")
                    key = posixpath.join(posixpath.dirname(m.name), stem)
                    groups.setdefault(key, {})[ext.lower()] = m
            for key, members in groups.items():
                image, lab = _find(members, IMAGE_EXTS), _find(members, LABEL_EXTS)
                if image is None or lab is None:
                    kind = "image (.jpg/.jpeg/.png/.webp)" if image is None else "label (.cls)"
                    raise ConfigError(
                        f"{path}: sample '{key}' has no {kind} member "
                        f"(found {', '.join(m.name for m in members.values())})"
                    )
                data = tar.extractfile(lab).read()
                label = _label(data, lab.name.endswith(".json"), f"{path}: {lab.name}")
                rows.append((image.offset_data, image.size, label))
    except (tarfile.TarError, OSError) as e:
        raise ConfigError(f"{path}: not a readable uncompressed tar ({e})") from None
    if not rows:
        raise ConfigError(f"{path}: the shard holds no samples")
    return list(groups), np.asarray(rows, dtype=np.int64).reshape(-1, 3)
