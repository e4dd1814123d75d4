"""Registries: name -> class (or factory) maps filled by ``@X.register_module()``.

``build(cfg)`` pops ``type`` from a dict and calls the registered object with the rest.
Unknown names are errors that list the closest registered names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .errors import closest


class Registry:
    """A name -> object map with decorator registration and dict-based building.

    ``location`` names the module whose import registers the built-ins; it is imported
    the first time the registry is looked up, so ``import acchooks`` stays light (no
    timm or torchvision until a model or dataset is asked for)."""

    def __init__(self, name: str, location: str | None = None):
        self.name = name
        self.location = location
        self._modules: dict[str, Any] = {}

    def _filled(self) -> dict[str, Any]:
        if self.location is not None:
            location, self.location = self.location, None
            import importlib

            importlib.import_module(location)
        return self._modules

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {sorted(self._filled())})"

    def __len__(self) -> int:
        return len(self._filled())

    def __contains__(self, key: str) -> bool:
        return key in self._filled()

    def keys(self) -> list[str]:
        return sorted(self._filled())

    def _register(self, obj: Any, name: str | list[str] | None, force: bool) -> None:
        if not callable(obj):
            raise TypeError(
                f"{self.name}: only classes or functions can be registered, got {obj!r}"
            )
        names = [obj.__name__] if name is None else [name] if isinstance(name, str) else list(name)
        modules = self._filled()  # built-ins first: a user's force=True then replaces them
        for key in names:
            existing = modules.get(key)
            if existing is not None and existing is not obj and not force:
                raise KeyError(
                    f"{self.name}: '{key}' is already registered as "
                    f"{existing.__module__}.{existing.__qualname__}; "
                    f"pass force=True to replace it or register under another name="
                )
            self._modules[key] = obj

    def register_module(
        self, name: str | list[str] | None = None, force: bool = False, module: Any = None
    ) -> Callable:
        """Register ``module`` now, or return a decorator that registers its target."""
        if not (name is None or isinstance(name, (str, list))):
            raise TypeError(f"name must be None, a str or a list of str, got {type(name).__name__}")
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(obj):
            self._register(obj, name, force)
            return obj

        return decorator

    def unknown_message(self, key: str) -> str:
        near = closest(key, self._filled(), n=3)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        return f"unknown {self.name} type '{key}'{hint} (registered: {', '.join(self.keys())})"

    def get(self, key: str | type) -> Any:
        if not isinstance(key, str):
            return key  # a class given directly
        if key not in self._filled():
            raise KeyError(self.unknown_message(key))
        return self._modules[key]

    def build(self, cfg: Mapping[str, Any], **default_args: Any) -> Any:
        """Build ``cfg['type']`` with the remaining keys (``default_args`` fill gaps)."""
        if not isinstance(cfg, Mapping):
            raise TypeError(f"{self.name}: config must be a dict with a 'type' key, got {cfg!r}")
        if "type" not in cfg:
            raise KeyError(f"{self.name}: config {dict(cfg)!r} has no 'type' key")
        args = dict(cfg)
        obj = self.get(args.pop("type"))
        for k, v in default_args.items():
            args.setdefault(k, v)
        return obj(**args)


def accepted_arguments(obj: Any) -> tuple[set[str], bool]:
    """Keyword arguments a class/function accepts, and whether it takes ``**kwargs``."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return set(), True
    names, var_kw = set(), False
    for i, p in enumerate(sig.parameters.values()):
        if inspect.isclass(obj) and i == 0 and p.name == "self":
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names, var_kw


HOOKS = Registry("hook", "acchooks.hooks")
MODELS = Registry("model", "acchooks.models")
DATASETS = Registry("dataset", "acchooks.datasets")
LOSSES = Registry("loss", "acchooks.models")
RUNNERS = Registry("runner", "acchooks.runner")
LR_POLICIES = Registry("lr policy", "acchooks.schedules")
METRICS = Registry("metric", "acchooks.evaluation.metrics")
