"""Checking ``dict(type=..., **args)`` entries against what the named class accepts.

The declaration of a registered class's options is its constructor's signature (names,
defaults, type hints), or its ``check_config`` classmethod where values need more than a
type; :func:`check_registered` walks whichever the class has.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import did_you_mean
from ..registry import Registry, accepted_arguments
from .checks import expected, is_int, is_number


def _type_ok(value: Any, ann: Any) -> bool:
    """Loose runtime check of a value against a simple annotation; unknown -> accepted."""
    if ann is inspect.Parameter.empty or ann is Any:
        return True
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(ann))
    if ann is type(None) or ann is None:
        return value is None
    target = origin or ann
    if not isinstance(target, type):
        return True
    if target is float:
        return is_number(value)
    if target is int:
        return is_int(value)
    if target in (list, tuple) or (issubclass(target, typing.Sequence) and target is not str):
        return isinstance(value, (list, tuple))
    if issubclass(target, Mapping):
        return isinstance(value, Mapping)
    if target in (bool, str):
        return isinstance(value, target)
    return True


def _hints(obj: Any) -> dict[str, Any]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations are simply not checked
        return {}


def _ann_name(ann: Any) -> str:
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def _missing(obj: Any, args: Mapping[str, Any], skip: tuple[str, ...]) -> list[str]:
    """Required parameters of ``obj`` that ``args`` does not give."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in params[1 if inspect.isclass(obj) else 0 :]
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in args
        and p.name not in skip
    ]


def check_args(
    obj: Any, args: Mapping[str, Any], path: str, name: str, skip: tuple[str, ...] = ()
) -> list[str]:
    """Unexpected, missing or wrongly-typed arguments for building ``obj(**args)``."""
    accepted, var_kw = accepted_arguments(obj)
    accepted -= set(skip)
    problems = []
    if not var_kw:
        problems += [
            f"{path} ({name}): unexpected argument '{k}'"
            f"{did_you_mean(k, accepted)} (accepted: {', '.join(sorted(accepted)) or 'none'})"
            for k in args
            if k not in accepted
        ]
    problems += [
        f"{path} ({name}): missing required argument '{p}'" for p in _missing(obj, args, skip)
    ]
    hints = _hints(obj)
    problems += [
        expected(f"{path}.{k} ({name})", _ann_name(hints[k]), v)
        for k, v in args.items()
        if k in hints and not _type_ok(v, hints[k])
    ]
    return problems


def check_registered(
    registry: Registry,
    cfg: Any,
    path: str,
    skip: tuple[str, ...] = (),
    default_type: str | None = None,
) -> list[str]:
    """A ``dict(type=..., **args)`` entry: known type, acceptable arguments, priority."""
    if not isinstance(cfg, Mapping):
        return [expected(path, "a dict with a 'type' key", cfg)]
    type_ = cfg.get("type", default_type)
    if type_ is None:
        return [f"{path}: missing 'type' (one of: {', '.join(registry.keys())})"]
    if type_ not in registry:
        return [f"{path}.type: {registry.unknown_message(type_)}"]
    obj = registry.get(type_)
    args = {k: v for k, v in cfg.items() if k not in ("type", "priority")}
    custom = getattr(obj, "check_config", None)
    if callable(custom):
        problems = list(custom(args, path=path))
    else:
        problems = check_args(obj, args, path, type_, skip)
    if "priority" in cfg:
        from ..hooks.priority import get_priority

        try:
            get_priority(cfg["priority"])
        except (ValueError, TypeError) as e:
            problems.append(f"{path}.priority: {e}")
    return problems
