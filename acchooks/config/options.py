"""Command-line overrides (``--cfg-options``) and ``custom_imports``."""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from ..errors import ConfigError, did_you_mean

logger = logging.getLogger("acchooks")

# Words people type on a shell without Python's capitalisation.
_WORDS = {"true": True, "false": False, "none": None, "null": None}
_PAIRS = {"[": "]", "(": ")", "{": "}"}


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _from_ast(node: ast.AST) -> Any:
    """Literal evaluation where bare names are strings (``[a,b]`` -> ``['a', 'b']``)."""
    if isinstance(node, ast.Constant) and isinstance(
        node.value, (type(None), bool, int, float, str)
    ):
        return node.value
    if isinstance(node, ast.Name):
        return _WORDS.get(node.id.lower(), node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _from_ast(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List):
        return [_from_ast(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_from_ast(e) for e in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_from_ast(k): _from_ast(v) for k, v in zip(node.keys, node.values, strict=True)}
    raise ValueError("not a literal")


def parse_value(text: str) -> Any:
    """Type one ``--cfg-options`` value: number, bool, None, list, tuple, dict or string."""
    s = text.strip()
    if s.lower() in _WORDS:
        return _WORDS[s.lower()]
    parts = _split_top(s)
    if len(parts) > 1:  # a=x,y (no brackets) is a list, as in mmcv's DictAction
        return [parse_value(p) for p in parts if p.strip()]
    try:
        return _from_ast(ast.parse(s, mode="eval").body)
    except (SyntaxError, ValueError):
        pass
    if len(s) >= 2 and _PAIRS.get(s[0]) == s[-1] and s[0] != "{":
        # brackets around things Python cannot parse, e.g. [a.b, c/d]: split by hand
        items = [parse_value(p) for p in _split_top(s[1:-1]) if p.strip()]
        return items if s[0] == "[" else tuple(items)
    return s  # a plain string (paths, model names like resnet50.a1_in1k)


DELETE_KEY = "_delete_"


def merge_dicts(base: Mapping, own: Mapping) -> dict:
    """``own`` merged recursively over ``base``; ``_delete_=True`` dicts replace instead."""
    out = dict(base)
    for key, value in own.items():
        if (
            isinstance(value, Mapping)
            and not value.get(DELETE_KEY, False)
            and isinstance(out.get(key), Mapping)
        ):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def strip_delete(value: Any) -> Any:
    """A copy of ``value`` without ``_delete_`` keys at any depth."""
    if isinstance(value, Mapping):
        return {k: strip_delete(v) for k, v in value.items() if k != DELETE_KEY}
    if isinstance(value, list):
        return [strip_delete(v) for v in value]
    if type(value) is tuple:
        return tuple(strip_delete(v) for v in value)
    return value


def _index(container: list | tuple, part: str, dotted: str) -> int:
    try:
        idx = int(part)
    except ValueError:
        raise ConfigError(
            f"cfg option '{dotted}': '{part}' indexes a list/tuple, so it must be "
            f"an integer (e.g. 'custom_hooks.0.priority')"
        ) from None
    if not -len(container) <= idx < len(container):
        raise ConfigError(
            f"cfg option '{dotted}': index {idx} is out of range for a "
            f"{type(container).__name__} of length {len(container)}"
        )
    return idx


def set_by_path(
    node: Any, parts: list[str], value: Any, dotted: str, wrap: Callable[[Any], Any] = lambda v: v
) -> Any:
    """Set ``value`` at key/index ``parts`` below ``node``; returns the (maybe rebuilt) node.

    Missing dict levels are created; dict values merge into dicts like ``_base_`` does.
    ``wrap`` converts what is stored into list slots (dict containers convert themselves).
    """
    head, rest = parts[0], parts[1:]
    if isinstance(node, (list, tuple)):
        idx = _index(node, head, dotted)
        new = wrap(
            strip_delete(value) if not rest else set_by_path(node[idx], rest, value, dotted, wrap)
        )
        if isinstance(node, tuple):  # immutable: rebuild it
            return tuple(new if i == idx else v for i, v in enumerate(node))
        node[idx] = new
        return node
    if not isinstance(node, dict):
        raise ConfigError(
            f"cfg option '{dotted}': cannot set '{head}' inside a "
            f"{type(node).__name__} value ({node!r}); only dicts and lists nest"
        )
    if not rest:
        old = node.get(head)
        if isinstance(value, Mapping) and isinstance(old, Mapping) and not value.get(DELETE_KEY):
            value = merge_dicts(old, value)
        node[head] = strip_delete(value)
        return node
    child = node.get(head)
    node[head] = set_by_path({} if child is None else child, rest, value, dotted, wrap)
    return node


def parse_cfg_options(items: Sequence[str]) -> dict[str, Any]:
    """``['optimizer.lr=0.1', 'workflow=[(train,1)]']`` -> ``{'optimizer.lr': 0.1, ...}``."""
    if isinstance(items, str):
        items = [items]
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--cfg-options item {item!r} is not of the form key=value "
                f"(e.g. optimizer.lr=0.01 or data.samples_per_gpu=64)"
            )
        options[key] = parse_value(value)
    return options


class DictAction(argparse.Action):
    """argparse action for ``--cfg-options k=v ...``; repeated flags accumulate."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        options = dict(getattr(namespace, self.dest, None) or {})
        try:
            options.update(parse_cfg_options([values] if isinstance(values, str) else values))
        except ConfigError as e:
            parser.error(str(e))
        setattr(namespace, self.dest, options)


_IMPORT_KEYS = ("imports", "allow_failed_imports")
_IMPORT_FORM = "dict(imports=['pkg.module'], allow_failed_imports=False)"


def import_custom_modules(custom_imports: Mapping[str, Any] | None) -> list[ModuleType]:
    """Import ``custom_imports['imports']`` so their ``@X.register_module()`` calls run."""
    if custom_imports is None:
        return []
    if not isinstance(custom_imports, Mapping):
        raise ConfigError(
            f"custom_imports must be a dict like {_IMPORT_FORM}, "
            f"got {type(custom_imports).__name__}"
        )
    problems = [
        f"custom_imports: unknown key '{k}'{did_you_mean(k, _IMPORT_KEYS)}"
        for k in custom_imports
        if k not in _IMPORT_KEYS
    ]
    if problems:
        raise ConfigError(problems)
    names = custom_imports.get("imports", [])
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"custom_imports.imports must be a module name or a list of them, "
            f"got {custom_imports.get('imports')!r}"
        )
    allow_failed = custom_imports.get("allow_failed_imports", False)
    if not isinstance(allow_failed, bool):
        raise ConfigError(
            f"custom_imports.allow_failed_imports must be True or False, got {allow_failed!r}"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:  # a user module next to the run dir should import, as in mmcv
        sys.path.append(cwd)
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except Exception as e:  # also errors raised while the module body runs
            msg = f"custom_imports: failed to import '{name}': {type(e).__name__}: {e}"
            if isinstance(e, ModuleNotFoundError):
                msg += (
                    f" (searched sys.path, which includes the working directory {cwd}; "
                    f"add the module's parent folder to PYTHONPATH)"
                )
            if not allow_failed:
                raise ConfigError(msg) from e
            logger.warning("%s; skipped because allow_failed_imports=True", msg)
    return modules
