"""ConfigDict: a dict whose (nested) keys are also attributes."""

from __future__ import annotations

from typing import Any

from ..errors import did_you_mean


def convert(value: Any) -> Any:
    """Turn nested dicts (also inside lists/tuples) into ConfigDicts, keeping container types."""
    if isinstance(value, dict) and not isinstance(value, ConfigDict):
        return ConfigDict(value)
    if isinstance(value, list):
        return [convert(v) for v in value]
    if type(value) is tuple:  # plain tuples only: namedtuples would lose their fields
        return tuple(convert(v) for v in value)
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
        super().__setitem__(key, convert(value))

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
