"""How an option set is declared: once, beside the code that reads it.

An :class:`OptionSet` is the options of one config dict (``accelerator``,
``hook_timing``, ``data.train_dataloader``, ...): for each a :class:`Option` with its
name, the :class:`~acchooks.config.checks.Check` its value must pass and its default.
The consumer reads its values through :meth:`OptionSet.resolve`, so the defaults it uses
are the declared ones; the config check (:mod:`acchooks.config.schema`) walks the same
declaration with :meth:`OptionSet.problems`. Neither keeps a copy of the other's table.

Declarations the first (torch-free) pass of the config check reads live in modules that
import only plain Python and ``acchooks.config``; :func:`declarations` reads such a
module without importing its package, whose ``__init__`` may import torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigError, did_you_mean
from .checks import Check, anything, expected, instance_of


@dataclass(frozen=True)
class Option:
    """One key of a config dict: its ``check``, its ``default`` and what it does.

    ``default=None`` with a ``doc`` saying so marks a default the consumer derives from
    other settings (it passes it to :meth:`OptionSet.resolve`). ``required``: True, or the
    reason printed when the key is missing. ``section``: the nested option set of a
    dict-valued key, walked by :meth:`OptionSet.problems`."""

    name: str
    check: Check = anything
    default: Any = None
    doc: str = ""
    required: bool | str = False
    section: OptionSet | None = None


class OptionSet:
    """The options of one config dict, walked by the config check and read by the code
    that consumes them; ``path`` is the dict's dotted config path."""

    def __init__(self, path: str, options: Iterable[Option], doc: str = ""):
        self.path = path
        self.options = {o.name: o for o in options}
        self.__doc__ = doc or f"The options of ``{path}``."

    def __repr__(self) -> str:
        return f"OptionSet({self.path!r}, {list(self.options)})"

    def __getitem__(self, name: str) -> Option:
        return self.options[name]

    def __contains__(self, name: object) -> bool:
        return name in self.options

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options.values())

    def names(self) -> list[str]:
        return list(self.options)

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self}

    def resolve(self, given: Mapping[str, Any] | None, **fallbacks: Any) -> dict[str, Any]:
        """Every option's value: from ``given``, else ``fallbacks``, else the default."""
        given = given or {}
        return {
            o.name: given[o.name] if o.name in given else fallbacks.get(o.name, o.default)
            for o in self
        }

    def unknown(self, key: str, path: str | None = None) -> str:
        """The message for a key this set does not declare."""
        return (
            f"{path or self.path}: unexpected key '{key}'{did_you_mean(key, self.options)} "
            f"(accepted: {', '.join(self.options)})"
        )

    def problems(self, given: Any, path: str | None = None) -> list[str]:
        """Every problem of the dict ``given`` (at ``path``, default :attr:`path`): unknown
        keys, missing required keys, values failing their check, and inside sections."""
        path = path or self.path
        if not isinstance(given, Mapping):
            return [expected(path, "a dict", given)]
        found = [self.unknown(k, path) for k in given if k not in self.options]
        for option in self:
            sub = f"{path}.{option.name}"
            if option.name not in given:
                if option.required:
                    why = "required" if option.required is True else option.required
                    found.append(f"{sub}: missing ({why})")
                continue
            value = given[option.name]
            message = option.check.problem(value, sub)
            if message is not None:
                found.append(message)
            elif option.section is not None and value is not None:
                found += option.section.problems(value, sub)
        return found

    def check(self, given: Any, path: str | None = None) -> None:
        """Raise one ConfigError with every problem of ``given``."""
        found = self.problems(given, path)
        if found:
            raise ConfigError(found)


def section(name: str, options: OptionSet, doc: str = "", nullable: bool = False) -> Option:
    """A dict-valued option walked with ``options`` (``None`` too if ``nullable``)."""
    check = instance_of(dict, type(None)) if nullable else instance_of(dict)
    return Option(name, check, None, doc or options.__doc__, section=options)


_STANDALONE: dict[str, ModuleType] = {}


def declarations(module: str) -> ModuleType:
    """The declaration module ``module`` (``'acchooks.runner.options'``).

    When its package is not imported yet (the first pass of the config check), the file
    is run on its own, without the package's ``__init__`` (which imports torch); it must
    import nothing but plain Python and ``acchooks.config`` / ``acchooks.errors``. Once
    the package is imported, this is the package's own module."""
    parent = module.rpartition(".")[0]
    if module in sys.modules or parent in sys.modules:
        return importlib.import_module(module)
    if module not in _STANDALONE:
        top = sys.modules[__name__.partition(".")[0]]
        path = Path(top.__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
        spec = importlib.util.spec_from_file_location(module, path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        _STANDALONE[module] = loaded
    return _STANDALONE[module]
