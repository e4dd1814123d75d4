"""Python config files with ``_base_`` inheritance, attribute access and a dumpable form.

A config file is executed in a fresh namespace; its top-level plain-data names
(None, bool, int, float, str and lists/tuples/dicts of those) are the config.
"""

from __future__ import annotations

import copy
import keyword
import math
import os
import pprint
import traceback
import types
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConfigError, closest, did_you_mean
from .options import merge_dicts, set_by_path, strip_delete

BASE_KEY = "_base_"
_SCALARS = (type(None), bool, int, float, str)


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """A config or ``_base_`` file that does not exist (catchable as either type)."""


def _convert(value: Any) -> Any:
    """Turn nested dicts (also inside lists/tuples) into ConfigDicts, keeping container types."""
    if isinstance(value, dict) and not isinstance(value, ConfigDict):
        return ConfigDict(value)
    if isinstance(value, list):
        return [_convert(v) for v in value]
    if type(value) is tuple:  # plain tuples only: namedtuples would lose their fields
        return tuple(_convert(v) for v in value)
    return value


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_plain(v) for v in value)
    return value


class ConfigDict(dict):
    """A dict whose (nested) keys are also attributes: ``cfg.model.type``.

    Dict methods win over keys of the same name (``cfg.data.items`` is the method);
    use item access for such keys.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        self.update(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocol lookups (pickle, copy) must fail fast
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            keys = [k for k in self if isinstance(k, str)]
            raise AttributeError(
                f"no config key '{name}'{did_you_mean(name, keys)} "
                f"(keys here: {', '.join(keys) or 'none'})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"no config key '{name}'") from None

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _convert(value))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> ConfigDict:
        return ConfigDict(self)

    def to_dict(self) -> dict:
        """Plain dicts/lists/tuples all the way down."""
        return _to_plain(self)


# ----------------------------------------------------------------------------- loading


def _not_found(path: str, referrer: str | None = None) -> ConfigFileNotFoundError:
    folder = os.path.dirname(path) or "."
    names = (
        sorted(f for f in os.listdir(folder) if f.endswith(".py")) if os.path.isdir(folder) else []
    )
    near = closest(os.path.basename(path), names, n=3)
    hint = (
        f"; did you mean {' or '.join(repr(os.path.join(folder, n)) for n in near)}?"
        if near
        else ""
    )
    where = f" (referenced by _base_ in {referrer})" if referrer else ""
    return ConfigFileNotFoundError(f"config file not found: {path}{where}{hint}")


def _data_problem(value: Any, where: str) -> str | None:
    """Why ``value`` is not plain config data (first offending path), or None when it is."""
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, (list, tuple)):
        parts = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        parts = [
            p for k, v in value.items() for p in ((f"{where} key {k!r}", k), (f"{where}.{k}", v))
        ]
    else:
        return (
            f"{where}: {type(value).__name__} is not config data; use None, bool, int, float, "
            f"str, list, tuple or dict (objects cannot be written back to a config file)"
        )
    return next((p for w, v in parts if (p := _data_problem(v, w)) is not None), None)


def _exec_file(path: str) -> tuple[dict, str]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        code = compile(text, path, "exec")
    except SyntaxError as e:
        line = (e.text or "").rstrip("\n")
        raise ConfigError(
            f"syntax error in config {path}, line {e.lineno}: {e.msg}"
            + (f"\n    {line.strip()}" if line else "")
        ) from None
    namespace: dict[str, Any] = {"__file__": path, "__name__": "__acchooks_config__"}
    try:
        exec(code, namespace)
    except Exception as e:  # report where in the config it failed, not our frames
        lines = [fr.lineno for fr in traceback.extract_tb(e.__traceback__) if fr.filename == path]
        at = f", line {lines[-1]}" if lines else ""
        raise ConfigError(
            f"error while executing config {path}{at}: {type(e).__name__}: {e}"
        ) from e
    return namespace, text


def _base_paths(raw: Any, path: str) -> list[str]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)) or not all(isinstance(b, str) for b in items):
        raise ConfigError(f"{path}: _base_ must be a path or a list of paths (str), got {raw!r}")
    folder = os.path.dirname(path)
    return [os.path.normpath(os.path.join(folder, os.path.expanduser(b))) for b in items]


def _load(path: str, chain: tuple[str, ...] = ()) -> tuple[dict, str]:
    """(merged plain dict, concatenated source texts) of ``path`` and its bases."""
    if path in chain:
        raise ConfigError("circular _base_ chain: " + " -> ".join(chain + (path,)))
    namespace, text = _exec_file(path)
    merged: dict = {}
    owner: dict[str, str] = {}  # top-level key -> base file that defined it
    texts: list[str] = []
    for base in _base_paths(namespace.get(BASE_KEY, []), path):
        if not os.path.isfile(base):
            raise _not_found(base, referrer=path)
        base_cfg, base_text = _load(base, chain + (path,))
        for key in base_cfg:
            if key in owner:
                raise ConfigError(
                    f"key '{key}' is defined in two base configs of {path}: {owner[key]} and "
                    f"{base}; keep it in only one of them, or set it in {path} itself"
                )
            owner[key] = base
        merged.update(base_cfg)
        texts.append(base_text)

    own: dict = {}
    problems = []
    for name, value in namespace.items():
        if name.startswith("__") or name == BASE_KEY:
            continue
        if isinstance(
            value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
        ):
            continue  # helpers and imports, not configuration
        if (p := _data_problem(value, name)) is not None:
            problems.append(p)
        own[name] = value
    if problems:
        raise ConfigError(problems, source=path)
    texts.append(f"# ---- {path} ----\n{text}")
    return strip_delete(merge_dicts(merged, own)), "\n".join(texts)


# ----------------------------------------------------------------------------- Config


def _nonfinite(v: Any) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    items = [*v, *v.values()] if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else []
    return any(_nonfinite(x) for x in items)


class Config:
    """A loaded config: a ConfigDict plus the file it came from and its source text."""

    def __init__(
        self, cfg_dict: Mapping | None = None, filename: str | None = None, text: str | None = None
    ):
        if cfg_dict is None:
            cfg_dict = {}
        if not isinstance(cfg_dict, Mapping):
            raise TypeError(f"cfg_dict must be a dict, got {type(cfg_dict).__name__}")
        object.__setattr__(self, "_cfg_dict", ConfigDict(cfg_dict))
        object.__setattr__(self, "_filename", None if filename is None else os.fspath(filename))
        object.__setattr__(self, "_text", text or "")

    @staticmethod
    def fromfile(path: str | os.PathLike) -> Config:
        """Load a ``.py`` config file, resolving its ``_base_`` files."""
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if not os.path.isfile(path):
            raise _not_found(path)
        if not path.endswith(".py"):
            raise ConfigError(f"config file {path}: only Python (.py) config files are supported")
        cfg, text = _load(path)
        return Config(cfg, filename=path, text=text)

    @property
    def filename(self) -> str | None:
        return self._filename

    @property
    def text(self) -> str:
        return self._text

    @property
    def pretty_text(self) -> str:
        """Valid Python source (``key = value`` lines) that loads back to this config."""
        plain = self.to_dict()
        lines = []
        for key, value in plain.items():
            if not (isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)):
                raise ConfigError(
                    f"top-level config key {key!r} is not a valid Python name, "
                    f"so the config cannot be written as a .py file"
                )
            body = pprint.pformat(value, width=max(40, 96 - len(key)), sort_dicts=False)
            # pformat indents continuation lines for column 0; shift them under 'key = '
            lines.append(f"{key} = " + body.replace("\n", "\n" + " " * (len(key) + 3)))
        if _nonfinite(plain):  # repr() gives bare inf/nan: define them, then drop them
            lines = ["from math import inf, nan", *lines, "del inf, nan"]
        return "\n".join(lines) + "\n"

    def dump(self, path: str | os.PathLike | None = None) -> str | None:
        """Write ``pretty_text`` to ``path`` (parents created); without a path return it."""
        text = self.pretty_text
        if path is None:
            return text
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return None

    def to_dict(self) -> dict:
        return self._cfg_dict.to_dict()

    def merge_from_dict(self, options: Mapping[str, Any]) -> None:
        """Apply dotted-key overrides such as ``{'optimizer.lr': 0.1, 'custom_hooks.0.priority': 10}``."""
        for dotted, value in options.items():
            parts = str(dotted).split(".")
            if not all(parts):
                raise ConfigError(
                    f"cfg option '{dotted}': empty key part; use dotted keys like 'optimizer.lr'"
                )
            set_by_path(self._cfg_dict, parts, value, str(dotted), wrap=_convert)

    def copy(self) -> Config:
        return copy.deepcopy(self)

    # dict-like delegation
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # internals not set yet (e.g. mid-unpickling)
            raise AttributeError(name)
        return getattr(self._cfg_dict, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._cfg_dict[name] = value

    def __delattr__(self, name: str) -> None:
        delattr(self._cfg_dict, name)

    def __getitem__(self, key: str) -> Any:
        return self._cfg_dict[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._cfg_dict[key] = value

    def __delitem__(self, key: str) -> None:
        del self._cfg_dict[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._cfg_dict.get(key, default)

    def keys(self):
        return self._cfg_dict.keys()

    def values(self):
        return self._cfg_dict.values()

    def items(self):
        return self._cfg_dict.items()

    def __contains__(self, key: object) -> bool:
        return key in self._cfg_dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._cfg_dict)

    def __len__(self) -> int:
        return len(self._cfg_dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._cfg_dict == other._cfg_dict
        return NotImplemented

    __hash__ = None  # mutable, like dict

    def __repr__(self) -> str:
        return f"Config(filename={self._filename!r}, cfg={self.to_dict()!r})"
