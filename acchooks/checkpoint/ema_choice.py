"""Choosing the EMA or the raw weights of a checkpoint.

A checkpoint directory of a run with an EMAHook holds two sets of weights:
the trained ("raw") ones in ``model.safetensors`` and the EMA copy in the EMAHook's state
(``hook.EMAHook.safetensors``), which also records which of them EvalHook evaluated
(``evaluated``: ``'ema'`` or ``'raw'``, from ``evaluate_with_ema``). :func:`choose_weights`
picks one: ``weights='ema'|'raw'``, or by default the evaluated ones (raw, saying so, for
a checkpoint saved before that was recorded). ``acchooks test --weights``, ``acchooks
convert --weights`` and ``load_from=dict(checkpoint=..., weights=...)`` use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .format import CheckpointError
from .reader import listed_file, read_group, read_json, verify_checkpoint
from .tree import join_tensors
from .workdir import follow_latest

WEIGHTS = ("ema", "raw")  # the choices of --weights / load_from.weights


def read_ema_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str | None] | None:
    """The EMA weights saved with an EMAHook's state in the checkpoint directory ``path``
    and what EvalHook evaluated (``'ema'``/``'raw'``; None if not recorded); None when
    ``path`` is not a checkpoint directory or holds no EMA."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return None
    manifest = verify_checkpoint(path)
    contents = manifest["contents"]
    if not contents.get("state"):
        return None
    hooks = read_json(listed_file(Path(path), manifest, contents["state"])).get("hooks") or {}
    keys = [k for k, st in hooks.items() if isinstance(st, dict) and "ema" in st]
    if not keys:
        return None
    key = "EMAHook" if "EMAHook" in keys else keys[0]
    group = contents.get("tensors", {}).get(f"hook.{key}")
    tensors = read_group(Path(path), manifest, group, "cpu") if group else {}
    state = join_tensors(hooks[key], tensors)
    evaluated = state.get("evaluated")
    return dict(state["ema"]), evaluated if evaluated in WEIGHTS else None


def check_weights_choice(weights: Any, what: str) -> list[str]:
    """The problem with a ``weights`` option (``None``, ``'ema'`` or ``'raw'``), if any."""
    if weights is None or weights in WEIGHTS:
        return []
    return [f"{what}: expected 'ema' or 'raw' (default: what EvalHook evaluated), got {weights!r}"]


def choose_weights(
    path: str | os.PathLike,
    weights: str | None = None,
    what: str = "load_from",
    option: str | None = None,
) -> tuple[dict[str, torch.Tensor], str, str]:
    """The EMA or the raw weights of ``path`` (see the module docstring), which
    (``'ema'``/``'raw'``) and a phrase naming them for the log, e.g. ``"the EMA weights of
    work/epoch_2 (what EvalHook evaluated in that run)"``. ``weights='ema'`` on a source
    without EMA weights is a ConfigError naming the file; errors name ``what`` (the
    source's option: ``--checkpoint``, ``load_from``) or ``option`` (the choice's:
    ``--weights``, ``load_from.weights``)."""
    from .weights import read_weights  # weights.py uses this module

    option = option or f"{what}.weights"
    problems = check_weights_choice(weights, option)
    if problems:
        raise ConfigError(problems)
    try:
        target = follow_latest(os.fspath(path))
        found = read_ema_weights(target)
    except CheckpointError as e:
        raise ConfigError(f"{what}: {e}") from None
    if weights == "ema" and found is None:
        raise ConfigError(
            f"{option}: 'ema' asked for, but {target} holds no EMA weights (only a "
            f"checkpoint directory of a run with an EMAHook does); use 'raw'"
        )
    if weights is None and found is not None:
        evaluated = found[1]
        weights = evaluated or "raw"
        why = (
            "what EvalHook evaluated in that run"
            if evaluated
            else "it holds EMA weights too but does not record which EvalHook evaluated: "
            "saved by an older acchooks; choose with 'ema'/'raw'"
        )
        note = f" ({why})"
    else:
        weights, note = weights or "raw", ""
    if weights == "ema":
        return found[0], "ema", f"the EMA weights of {target}{note}"
    return read_weights(target, what), "raw", f"the raw weights of {target}{note}"
