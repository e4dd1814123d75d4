"""Flatten a torch optimizer ``state_dict()`` into tensors + JSON data, and back.

``optimizer.state_dict()`` is ``{'state': {param_id: {name: value}}, 'param_groups':
[{..., 'params': [param_id, ...]}]}``. Every tensor goes to a flat dict (saved as
safetensors) under ``state.<param_id>.<name>`` (``param_groups.<i>.<key>`` for the rare
tensor hyper-parameter); everything else stays as JSON-able data. JSON has no tuples
and only string keys, so the flattened form records the paths that held tuples (Adam's
``betas``) and keeps the state as a list of ``{'id': .., 'values': ..}`` entries, which
preserves the type of the param ids. Nothing here checks JSON strictness: the writer
does that once, naming the offending key.
"""

from __future__ import annotations

from typing import Any

import torch

FORMAT = "acchooks-optimizer"
VERSION = 1
_TENSOR_TAG = "__tensor__"  # placeholder {'__tensor__': key} where a tensor stood


def _encode(value: Any, key: str, path: list, tensors: dict, tuples: list) -> Any:
    """Replace tensors by placeholders and tuples by lists, remembering both."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value
        return {_TENSOR_TAG: key}
    if isinstance(value, tuple):
        tuples.append(list(path))
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{key}.{i}", [*path, i], tensors, tuples) for i, v in enumerate(value)]
    if isinstance(value, dict):
        # Non-str keys pass through unchanged so the strict JSON check reports them.
        return {k: _encode(v, f"{key}.{k}", [*path, k], tensors, tuples) for k, v in value.items()}
    return value


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into ``(tensors, json_data)``."""
    if not isinstance(state_dict, dict) or "param_groups" not in state_dict:
        raise TypeError(
            f"expected an optimizer.state_dict() with 'state' and 'param_groups', "
            f"got {type(state_dict).__name__} with keys {list(getattr(state_dict, 'keys', list)())}"
        )
    tensors: dict[str, torch.Tensor] = {}
    tuples: list = []
    entries = []
    for i, (pid, values) in enumerate(state_dict.get("state", {}).items()):
        # The JSON path of a state value is ['state', <entry index>, 'values', name, ...].
        enc = _encode(values, f"state.{pid}", ["state", i, "values"], tensors, tuples)
        entries.append({"id": pid, "values": enc})
    groups = [
        _encode(g, f"param_groups.{i}", ["param_groups", i], tensors, tuples)
        for i, g in enumerate(state_dict["param_groups"])
    ]
    extra = {k: v for k, v in state_dict.items() if k not in ("state", "param_groups")}
    data = {
        "format": FORMAT,
        "version": VERSION,
        "state": entries,
        "param_groups": groups,
        "extra": _encode(extra, "extra", ["extra"], tensors, tuples),
        "tuples": tuples,
    }
    return tensors, data


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TENSOR_TAG}:
            key = value[_TENSOR_TAG]
            if key not in tensors:
                raise KeyError(f"tensor '{key}' is referenced but missing from the tensor file")
            return tensors[key]
        return {k: _decode(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    return value


def _to_tuple(root: dict, path: list) -> None:
    """Turn the list at ``path`` (inside ``root``) back into a tuple."""
    parent: Any = root
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = tuple(parent[path[-1]])


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], data: dict) -> dict:
    """Rebuild the ``state_dict`` that :func:`flatten_optimizer_state` split."""
    if data.get("format") != FORMAT:
        raise ValueError(f"expected format '{FORMAT}', found {data.get('format')!r}")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise ValueError(
            f"optimizer state version {data.get('version')!r} is newer than this acchooks "
            f"supports ({VERSION}); upgrade acchooks"
        )
    # Rebuild in the flattened layout first so the recorded tuple paths apply as-is;
    # deepest paths first so an inner tuple is converted before its container.
    tree = {
        "state": [{"id": e["id"], "values": _decode(e["values"], tensors)} for e in data["state"]],
        "param_groups": _decode(data["param_groups"], tensors),
        "extra": _decode(data.get("extra", {}), tensors),
    }
    for path in sorted(data.get("tuples", []), key=len, reverse=True):
        _to_tuple(tree, path)
    out = {
        "state": {e["id"]: e["values"] for e in tree["state"]},
        "param_groups": tree["param_groups"],
    }
    out.update(tree["extra"])
    return out
