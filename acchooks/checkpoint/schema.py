"""The schemas of a checkpoint's JSON files, checked before anything uses them.

``manifest.json`` (:func:`check_manifest`) and ``optimizer.json``
(:func:`check_optimizer_json`) are ours to define here; ``state.json`` is the caller's
(the Checkpointer checks its parts), so only its nesting is bounded (:func:`check_depth`).
Each problem is one :class:`~.format.CheckpointError` naming the file and the field, what
was expected and what was found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checksum import CHECKSUMS
from .format import MANIFEST_DIGEST, MAX_JSON_DEPTH, CheckpointError

_MANIFEST_KEYS = {"format", "version", "created", "meta", "versions", "contents", "aliases"}
_MANIFEST_KEYS |= {"files", MANIFEST_DIGEST}
# What the Checkpointer writes into ``meta``: a key present must have this type.
_COUNT = "a non-negative int"
_META = {
    "epoch": _COUNT,
    "iter": _COUNT,
    "inner_iter": _COUNT,
    "step": _COUNT,
    "samples": _COUNT,
    "world_size": "a positive int",
    "global_batch": "a positive int or null",
    "seed": "an int or null",
    "optimizer_type": "a string or null",
    "config": "a string or null",
    "nonfinite_weights": "a list of strings",
    # self-describing checkpoints (acchooks.datasets.describe); absent in older ones
    "classes": "a list of strings or null",
    "eval_transform": "a mapping or null",
    "model": "a mapping or null",
    "multi_label": "a bool",
}


def _show(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def fail(file: Path | str, field: str, expected: str, found: Any) -> CheckpointError:
    """The one message for a field of the wrong shape."""
    return CheckpointError(
        f"{file}: field '{field}' should be {expected}, found {_show(found)}; "
        "the file is damaged or was not written by acchooks (use an older checkpoint)"
    )


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ok(v: Any, expected: str) -> bool:
    """Does ``v`` match one of the few type descriptions used in this module?"""
    return {
        _COUNT: lambda: _int(v) and v >= 0,
        "a positive int": lambda: _int(v) and v > 0,
        "a positive int or null": lambda: v is None or (_int(v) and v > 0),
        "an int or null": lambda: v is None or _int(v),
        "a string": lambda: isinstance(v, str),
        "a string or null": lambda: v is None or isinstance(v, str),
        "a list of strings": lambda: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "a mapping": lambda: isinstance(v, dict),
        "a list of strings or null": lambda: v is None or _ok(v, "a list of strings"),
        "a mapping or null": lambda: v is None or isinstance(v, dict),
        "a bool": lambda: isinstance(v, bool),
    }[expected]()


def _mapping_of(m: Any, file: Path, field: str, expected: str) -> dict:
    """``m`` as a mapping whose every value matches ``expected``."""
    if not isinstance(m, dict):
        raise fail(file, field, f"a mapping to {expected.removeprefix('a ')}s", m)
    for k, v in m.items():
        if not _ok(v, expected):
            raise fail(file, f"{field}.{k}", expected, v)
    return m


def check_depth(obj: Any, file: Path | str) -> None:
    """No list or mapping nested deeper than :data:`MAX_JSON_DEPTH` (iteratively: a
    hostile file must not exhaust the stack of whoever walks it next)."""
    todo = [(obj, 0, "")]
    while todo:
        v, depth, path = todo.pop()
        if depth > MAX_JSON_DEPTH:
            raise CheckpointError(
                f"{file}: field '{path}' is nested deeper than {MAX_JSON_DEPTH} levels; "
                "the file is damaged or was not written by acchooks"
            )
        if isinstance(v, dict):
            todo += [(x, depth + 1, f"{path}.{k}" if path else str(k)) for k, x in v.items()]
        elif isinstance(v, list):
            todo += [(x, depth + 1, f"{path}[{i}]") for i, x in enumerate(v)]


def check_manifest(m: dict, file: Path) -> None:
    """The fields of a manifest (format and version already checked), by their types."""
    unknown = sorted(set(m) - _MANIFEST_KEYS)
    if unknown:
        raise CheckpointError(
            f"{file}: unexpected field '{unknown[0]}' (a manifest has {sorted(_MANIFEST_KEYS)}); "
            "the file is damaged or was not written by acchooks"
        )
    meta = m.get("meta", {})
    if not isinstance(meta, dict):
        raise fail(file, "meta", "a mapping", meta)
    for key, expected in _META.items():
        if key in meta and not _ok(meta[key], expected):
            raise fail(file, f"meta.{key}", expected, meta[key])
    _mapping_of(m.get("versions", {}), file, "versions", "a string")
    _check_contents(m.get("contents"), file)
    aliases = m.get("aliases", {})
    if not isinstance(aliases, dict):
        raise fail(file, "aliases", "a mapping of file name -> {alias: key}", aliases)
    for fname, group in aliases.items():
        _mapping_of(group, file, f"aliases.{fname}", "a string")
    files = m.get("files")
    if not isinstance(files, dict):
        raise fail(file, "files", "a mapping of file name -> {size, digest}", files)
    for name, info in files.items():
        if not isinstance(info, dict):
            raise fail(file, f"files.{name}", "a mapping with 'size'", info)
        if not _ok(info.get("size"), _COUNT):
            raise fail(file, f"files.{name}.size", _COUNT, info.get("size"))
        for algo in CHECKSUMS:
            if algo in info and not (info[algo] is None or isinstance(info[algo], str)):
                raise fail(file, f"files.{name}.{algo}", "a hex string", info[algo])


def _check_contents(c: Any, file: Path) -> None:
    if not isinstance(c, dict):
        raise fail(file, "contents", "a mapping", c)
    if not isinstance(c.get("model"), str):
        raise fail(file, "contents.model", "a file name", c.get("model"))
    opt = c.get("optimizer")
    if opt is not None and not (
        isinstance(opt, list) and len(opt) == 2 and all(isinstance(x, str) for x in opt)
    ):
        raise fail(file, "contents.optimizer", "null or [tensor file, json file]", opt)
    _mapping_of(c.get("tensors", {}), file, "contents.tensors", "a string")
    if not _ok(c.get("state"), "a string or null"):
        raise fail(file, "contents.state", "a file name or null", c.get("state"))


def check_optimizer_json(data: Any, file: Path) -> None:
    """The structure :func:`.optimizer_state.unflatten_optimizer_state` walks."""
    if not isinstance(data, dict):
        raise fail(file, "<root>", "a mapping", data)
    check_depth(data, file)
    state = data.get("state")
    if not isinstance(state, list):
        raise fail(file, "state", "a list of {id, values}", state)
    for i, e in enumerate(state):
        if not isinstance(e, dict) or "id" not in e or not isinstance(e.get("values"), dict):
            raise fail(file, f"state[{i}]", "a mapping {id, values: mapping}", e)
    groups = data.get("param_groups")
    if not isinstance(groups, list):
        raise fail(file, "param_groups", "a list of mappings", groups)
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or not isinstance(g.get("params"), list):
            raise fail(file, f"param_groups[{i}]", "a mapping with a 'params' list", g)
    if not isinstance(data.get("extra", {}), dict):
        raise fail(file, "extra", "a mapping", data.get("extra"))
    tuples = data.get("tuples", [])
    if not isinstance(tuples, list) or not all(isinstance(t, list) and t for t in tuples):
        raise fail(file, "tuples", "a list of non-empty paths", tuples)
