"""LogBuffer: the scalars of recent iterations, averaged when a logger asks.

Values are kept as given (Python floats or detached tensors) so the hot loop never
forces a device sync; :meth:`average` turns the window into floats once, and - when a
``reduce`` function is set (the runner sets Accelerate's mean-reduce) - averages them
across processes in a single collective. All processes call it at the same iterations.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from operator import mul
from typing import Any

import torch


def _as_floats(vals: list) -> list[float]:
    """The values as Python floats: one-element tensors of one dtype and device in one
    stack and one transfer (one device sync for the whole window; a per-value ``float()``
    costs ~10 us each), numbers as they are. CPU tensors are read one by one, which
    there is cheaper than stacking."""
    first = vals[0]
    if isinstance(first, torch.Tensor) and first.device.type == "cpu" and first.numel() == 1:
        try:  # on the CPU there is no sync to save: .item() is cheaper than a stack
            return [float(v.item()) for v in vals]
        except (AttributeError, RuntimeError, ValueError):  # numbers or larger tensors mixed in
            pass
    if isinstance(first, torch.Tensor):
        try:  # raises for numbers, other devices or other shapes among the tensors
            stacked = torch.stack(vals)
        except TypeError:
            stacked = None
        except RuntimeError:
            try:  # one-element tensors of different shapes
                stacked = torch.stack([v.reshape(()) for v in vals])
            except RuntimeError:
                stacked = None
        # and a promoted dtype or a tensor of several elements: one value at a time
        if stacked is not None and stacked.dtype == first.dtype and stacked.numel() == len(vals):
            return stacked.detach().reshape(-1).to(torch.float64).tolist()
    return [float(v) for v in vals]


class LogBuffer:
    """History of scalars plus the records published for the loggers at this stage.

    A record is ``{"mode": "train"|"val", "iters": int, "values": {...}}``; a train
    iteration can publish both the train averages and (EvalHook, iteration-based) val
    metrics, and every logger writes every record. The runner clears the records after
    each stage.
    """

    def __init__(self, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.reduce = reduce
        self.val_history: OrderedDict[str, list] = OrderedDict()
        self.n_history: OrderedDict[str, list[int]] = OrderedDict()
        self.records: list[dict[str, Any]] = []

    @property
    def ready(self) -> bool:
        return bool(self.records)

    def has(self, mode: str) -> bool:
        return any(r["mode"] == mode for r in self.records)

    @property
    def output(self) -> dict[str, Any]:
        """Values of the latest record (mmcv's ``log_buffer.output``)."""
        return self.records[-1]["values"] if self.records else {}

    def update(self, vars: dict[str, Any], count: int = 1) -> None:
        vh, nh = self.val_history, self.n_history
        for k, v in vars.items():
            h = vh.get(k)
            if h is None:
                vh[k], nh[k] = [v], [count]
            else:
                h.append(v)
                nh[k].append(count)

    def add(self, key: str, value: Any, count: int = 1) -> None:
        """``update({key: value}, count)`` for one value, without building the dict (the
        hooks' per-iteration path)."""
        h = self.val_history.get(key)
        if h is None:
            self.val_history[key], self.n_history[key] = [value], [count]
        else:
            h.append(value)
            self.n_history[key].append(count)

    def clear(self) -> None:
        self.val_history.clear()
        self.n_history.clear()
        self.clear_output()

    def clear_output(self) -> None:
        self.records.clear()

    def average(self, n: int = 0, mode: str = "train", iters: int = 0) -> None:
        """Publish the count-weighted mean of the last ``n`` values (all if 0), once."""
        if self.has(mode):
            return
        keys, means = [], []
        for k, vals in self.val_history.items():
            if n:
                vals, counts = vals[-n:], self.n_history[k][-n:]
            else:
                counts = self.n_history[k]
            if not vals:
                continue
            keys.append(k)  # count-weighted mean, in float64 (Python floats)
            means.append(sum(map(mul, _as_floats(vals), counts)) / sum(counts))
        if keys and self.reduce is not None:
            means = self.reduce(torch.tensor(means, dtype=torch.float64)).tolist()
        self.put(dict(zip(keys, means, strict=True)), mode, iters)

    def put(self, values: dict[str, Any], mode: str, iters: int = 0) -> None:
        """Publish final values (e.g. evaluation metrics); merges into a record of the
        same mode published at this stage."""
        for r in self.records:
            if r["mode"] == mode:
                r["values"].update(values)
                return
        self.records.append({"mode": mode, "iters": iters, "values": dict(values)})
