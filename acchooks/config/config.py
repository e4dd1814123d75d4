"""Python config files with ``_base_`` inheritance, attribute access and a dumpable form.

A config file is executed in a fresh namespace; its top-level plain-data names
(None, bool, int, float, str and lists/tuples/dicts of those) are the config.
"""

from __future__ import annotations

import ast
import copy
import keyword
import math
import os
import pprint
import traceback
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from ..errors import ConfigError, closest
from . import references as refs
from .config_dict import ConfigDict, convert
from .options import merge_dicts, set_by_path, strip_delete

BASE_KEY = refs.BASE_KEY
HELPERS_KEY = "_helpers_"  # how a dumped config keeps its helper names
_RESERVED = (BASE_KEY, refs.DEPRECATION_KEY, HELPERS_KEY)
_SCALARS = (type(None), bool, int, float, str)


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """A config or ``_base_`` file that does not exist (catchable as either type)."""


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


def _exec_file(path: str) -> tuple[dict, str, dict[str, str], set[str]]:
    """(namespace, source, ``{{_base_.x}}`` placeholders, top-level names read by the code)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    code_text, placeholders = refs.pre_substitute(text)
    try:
        tree = ast.parse(code_text, path)
        code = compile(tree, path, "exec")
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
    return namespace, text, placeholders, refs.read_names(tree, set(namespace))


def _base_paths(raw: Any, path: str) -> list[str]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)) or not all(isinstance(b, str) for b in items):
        raise ConfigError(f"{path}: _base_ must be a path or a list of paths (str), got {raw!r}")
    folder = os.path.dirname(path)
    return [os.path.normpath(os.path.join(folder, os.path.expanduser(b))) for b in items]


class _Loaded(NamedTuple):
    cfg: dict  # merged, plain
    text: str  # the source texts, bases first
    helpers: set[str]  # top-level names the configs' own code reads
    notes: list[str]  # warnings found while loading


def _merge_bases(path: str, namespace: dict, chain: tuple[str, ...]) -> _Loaded:
    merged: dict = {}
    owner: dict[str, str] = {}  # top-level key -> base file that defined it
    texts, helpers, notes = [], set(), []
    for base in _base_paths(namespace.get(BASE_KEY, []), path):
        if not os.path.isfile(base):
            raise _not_found(base, referrer=path)
        loaded = _load(base, chain + (path,))
        for key in loaded.cfg:
            if key in owner:
                raise ConfigError(
                    f"key '{key}' is defined in two base configs of {path}: {owner[key]} and "
                    f"{base}; keep it in only one of them, or set it in {path} itself"
                )
            owner[key] = base
        merged.update(loaded.cfg)
        texts.append(loaded.text)
        helpers |= loaded.helpers
        notes += loaded.notes
    return _Loaded(merged, "\n".join(texts), helpers, notes)


def _load(path: str, chain: tuple[str, ...] = ()) -> _Loaded:
    """The merged plain config of ``path`` and its bases, their texts, helpers and notes."""
    if path in chain:
        raise ConfigError("circular _base_ chain: " + " -> ".join(chain + (path,)))
    namespace, text, placeholders, read = _exec_file(path)
    bases = _merge_bases(path, namespace, chain)
    notes = list(bases.notes)
    if refs.DEPRECATION_KEY in namespace:
        notes.append(refs.deprecation_message(namespace[refs.DEPRECATION_KEY], path))
    own: dict = {}
    problems = []
    for name, value in namespace.items():
        if name.startswith("__") or name in _RESERVED:
            continue
        if isinstance(
            value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
        ):
            continue  # helpers and imports, not configuration
        if (p := _data_problem(value, name)) is not None:
            problems.append(p)
        own[name] = refs.drop_delete_typos(
            refs.substitute(value, placeholders, bases.cfg, path), name, notes
        )
    if problems:
        raise ConfigError(problems, source=path)
    helpers = bases.helpers | refs.referenced_names(placeholders) | (read & set(own))
    helpers |= set(namespace.get(HELPERS_KEY) or ())
    texts = [t for t in (bases.text, f"# ---- {path} ----\n{text}") if t]
    return _Loaded(strip_delete(merge_dicts(bases.cfg, own)), "\n".join(texts), helpers, notes)


# ----------------------------------------------------------------------------- Config


def _nonfinite(v: Any) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    items = [*v, *v.values()] if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else []
    return any(_nonfinite(x) for x in items)


class Config:
    """A loaded config: a ConfigDict plus the file it came from and its source text.

    ``helpers``: top-level names the config's own code reads (see
    :mod:`acchooks.config.references`); ``load_warnings``: what loading found to warn
    about (``_deprecation_``, ``_delete`` typos), reported with the config check's."""

    def __init__(
        self,
        cfg_dict: Mapping | None = None,
        filename: str | None = None,
        text: str | None = None,
        helpers: Iterable[str] = (),
        load_warnings: Iterable[str] = (),
    ):
        if cfg_dict is None:
            cfg_dict = {}
        if not isinstance(cfg_dict, Mapping):
            raise TypeError(f"cfg_dict must be a dict, got {type(cfg_dict).__name__}")
        object.__setattr__(self, "_cfg_dict", ConfigDict(cfg_dict))
        object.__setattr__(self, "_filename", None if filename is None else os.fspath(filename))
        object.__setattr__(self, "_text", text or "")
        object.__setattr__(self, "_helpers", frozenset(helpers))
        object.__setattr__(self, "_load_warnings", tuple(load_warnings))

    @property
    def helpers(self) -> frozenset[str]:
        """Top-level names that the config's own expressions (or ``{{_base_.x}}``) read."""
        return self._helpers

    @property
    def load_warnings(self) -> tuple[str, ...]:
        return self._load_warnings

    @staticmethod
    def fromfile(path: str | os.PathLike) -> Config:
        """Load a ``.py`` config file, resolving its ``_base_`` files."""
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if not os.path.isfile(path):
            raise _not_found(path)
        if not path.endswith(".py"):
            raise ConfigError(f"config file {path}: only Python (.py) config files are supported")
        loaded = _load(path)
        helpers = sorted(n for n in loaded.helpers if n in loaded.cfg)
        return Config(loaded.cfg, path, loaded.text, helpers, loaded.notes)

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
        if self._helpers & set(plain):  # so that a dumped config checks as the original
            lines.append(f"{HELPERS_KEY} = {sorted(self._helpers & set(plain))!r}")
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
            set_by_path(self._cfg_dict, parts, value, str(dotted), wrap=convert)

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
