"""What a config file's source says besides its values, read as mmcv 1.x reads it.

* ``{{_base_.key}}`` (or ``{{ _base_.a.b }}``) refers to a value of the merged base
  configs. As in mmcv's ``Config._pre_substitute_base_vars``, each reference is replaced
  textually by a unique placeholder string before the file runs, and the placeholder by
  the base's value once the bases are merged (``_substitute_base_vars``); so a reference
  is a whole value (``pipeline = {{_base_.train_pipeline}}``), not part of an expression.
* ``_deprecation_ = dict(expected=..., reference=...)`` marks a deprecated config file;
  mmcv warns with the message of :func:`deprecation_message`.
* ``_delete`` in a dict is a real-world typo of ``_delete_``: mmcv ignores the key, so the
  dict merges with the inherited one; it is dropped here with a warning saying so.
* helper names: top-level names the config's own expressions read (``checkpoint = '...'``
  then ``init_cfg=dict(checkpoint=checkpoint)``), or that another file reads through
  ``{{_base_.name}}``. They are part of the config, as in mmcv, but no consumer reads
  them, so the config check lists them in a warning instead of suggesting a key.
"""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, did_you_mean

BASE_KEY = "_base_"
DEPRECATION_KEY = "_deprecation_"
DELETE_TYPO = "_delete"
_REFERENCE = re.compile(r"\{\{\s*" + BASE_KEY + r"\.([\w\.]+)\s*\}\}")


def pre_substitute(text: str) -> tuple[str, dict[str, str]]:
    """``text`` with every ``{{_base_.key}}`` replaced by a placeholder string, and the
    placeholders (placeholder -> dotted key)."""
    placeholders: dict[str, str] = {}
    for key in sorted(set(_REFERENCE.findall(text))):
        placeholders[f"_{key}_{uuid.uuid4().hex[:6]}"] = key
    by_key = {key: p for p, key in placeholders.items()}
    return _REFERENCE.sub(lambda m: f'"{by_key[m.group(1)]}"', text), placeholders


def _lookup(base: Mapping, dotted: str, path: str) -> Any:
    value: Any = base
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(value, Mapping) or part not in value:
            where = ".".join(dotted.split(".")[:i]) or "the merged base configs"
            keys = list(value) if isinstance(value, Mapping) else []
            raise ConfigError(
                f"{path}: {{{{_base_.{dotted}}}}}: {where} has no key '{part}'"
                f"{did_you_mean(part, keys)}"
                + (f" (keys: {', '.join(map(str, keys))})" if keys else "")
            )
        value = value[part]
    return value


def substitute(value: Any, placeholders: Mapping[str, str], base: Mapping, path: str) -> Any:
    """``value`` with each placeholder string replaced by the base's value it names."""
    if not placeholders:
        return value
    if isinstance(value, str):
        return _lookup(base, placeholders[value], path) if value in placeholders else value
    if isinstance(value, Mapping):
        return {k: substitute(v, placeholders, base, path) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, placeholders, base, path) for v in value]
    if type(value) is tuple:
        return tuple(substitute(v, placeholders, base, path) for v in value)
    return value


def referenced_names(placeholders: Mapping[str, str]) -> set[str]:
    """The top-level base names that ``{{_base_.name...}}`` references read."""
    return {dotted.split(".")[0] for dotted in placeholders.values()}


def read_names(tree: ast.AST, defined: set[str]) -> set[str]:
    """The names of ``defined`` that the file's expressions read."""
    return {
        n.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in defined
    }


def deprecation_message(info: Any, path: str) -> str:
    """mmcv's warning for a file with ``_deprecation_``."""
    msg = f"The config file {path} will be deprecated in the future."
    if isinstance(info, Mapping):
        if "expected" in info:
            msg += f" Please use {info['expected']} instead."
        if "reference" in info:
            msg += f" More information can be found at {info['reference']}"
    return msg


def drop_delete_typos(value: Any, where: str, notes: list[str]) -> Any:
    """``value`` without ``_delete`` keys (mmcv ignores them), each noted in ``notes``."""
    if isinstance(value, Mapping):
        if DELETE_TYPO in value:
            notes.append(
                f"{where}: key '_delete' is ignored, as mmcv ignores it, so this dict is "
                f"merged with the inherited one; did you mean '_delete_' (replace it)?"
            )
        return {
            k: drop_delete_typos(v, f"{where}.{k}", notes)
            for k, v in value.items()
            if k != DELETE_TYPO
        }
    if isinstance(value, list) or type(value) is tuple:
        items = [drop_delete_typos(v, f"{where}[{i}]", notes) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value
