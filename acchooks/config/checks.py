"""The value checks every part of acchooks uses on user input, with one message style.

A :class:`Check` knows what it expects, in words, and tests a value against it. Called,
it raises :class:`~acchooks.errors.ConfigError` (a ``ValueError``)::

    positive_int(interval, "EMAHook.interval")
    # EMAHook.interval: expected a positive int, got 0

    one_of(("auto", "bar", "lines"))(mode, "progress_config.mode")
    # progress_config.mode: expected one of 'auto', 'bar', 'lines', got 'line'; did you mean 'lines'?

:meth:`Check.problem` returns that message (or None) instead, for code that collects all
the problems of a config before reporting; :func:`problems_of` and :func:`require` do it for
several values at once. Checks combine: ``literal("auto") | int_at_least(1)`` expects
"'auto' or an int >= 1"; :func:`optional` also accepts None.

Plain Python only: the first pass of the config check runs this before torch is imported.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError, did_you_mean

_WORDS = {
    bool: "True or False",
    int: "an int",
    float: "a number",
    str: "a string",
    dict: "a dict",
    list: "a list",
    tuple: "a tuple",
    type(None): "None",
}


def expected(path: str, what: str, value: Any) -> str:
    """The one message format: ``<path>: expected <what>, got <value!r>``."""
    return f"{path}: expected {what}, got {value!r}"


def is_int(value: Any) -> bool:
    """An int that is not a bool (``True`` is no count of anything)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Check:
    """What a value must be (``expects``, in words) and the test for it.

    ``note`` is printed after the expectation (``an int >= 0 (0: no warm-up)``);
    ``choices`` feed the did-you-mean hint for a misspelled string."""

    expects: str
    test: Callable[[Any], bool]
    note: str = ""
    choices: tuple[Any, ...] = ()

    def ok(self, value: Any) -> bool:
        return bool(self.test(value))

    def problem(self, value: Any, path: str) -> str | None:
        """The message for ``value`` at ``path``, or None when it passes."""
        if self.ok(value):
            return None
        what = f"{self.expects} ({self.note})" if self.note else self.expects
        hint = ""
        if isinstance(value, str) and self.choices:
            hint = did_you_mean(value, [c for c in self.choices if isinstance(c, str)])
        return expected(path, what, value) + hint

    def __call__(self, value: Any, path: str) -> Any:
        """``value`` when it passes; else raise ConfigError with :meth:`problem`."""
        message = self.problem(value, path)
        if message is not None:
            raise ConfigError(message)
        return value

    def __or__(self, other: Check) -> Check:
        return Check(
            f"{self.expects} or {other.expects}",
            lambda v: self.ok(v) or other.ok(v),
            choices=self.choices + other.choices,
        )

    def named(self, expects: str) -> Check:
        """The same test, described as ``expects``."""
        return replace(self, expects=expects)

    def noted(self, note: str) -> Check:
        """The same test, with ``note`` after the expectation in messages."""
        return replace(self, note=note)


def problems_of(*checks: tuple[Check, Any, str]) -> list[str]:
    """The messages of every ``(check, value, path)`` that fails, in order."""
    return [m for check, value, path in checks if (m := check.problem(value, path)) is not None]


def require(*checks: tuple[Check, Any, str]) -> None:
    """Raise one ConfigError listing every failing ``(check, value, path)``."""
    found = problems_of(*checks)
    if found:
        raise ConfigError(found)


# ---------------------------------------------------------------- the checks
anything = Check("anything", lambda v: True)
none = Check("None", lambda v: v is None)
boolean = Check("True or False", lambda v: isinstance(v, bool))
integer = Check("an int", is_int)
number = Check("a number", is_number)
string = Check("a string", lambda v: isinstance(v, str))
positive_int = Check("a positive int", lambda v: is_int(v) and v > 0)
positive_float = Check("a positive float", lambda v: is_number(v) and v > 0)


def int_at_least(low: int) -> Check:
    """An int >= ``low``."""
    return Check(f"an int >= {low}", lambda v: is_int(v) and v >= low)


non_negative_int = int_at_least(0)


def int_in(low: int, high: int) -> Check:
    """An int from ``low`` to ``high``, both included."""
    return Check(f"an int from {low} to {high}", lambda v: is_int(v) and low <= v <= high)


def number_at_least(low: float) -> Check:
    """A number >= ``low``."""
    return Check(f"a number >= {low}", lambda v: is_number(v) and v >= low)


def number_in(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Check:
    """A number in the interval from ``low`` to ``high``; ``*_open`` leave an end out."""
    lo, hi = "(" if low_open else "[", ")" if high_open else "]"

    def test(v: Any) -> bool:
        return (
            is_number(v)
            and (v > low if low_open else v >= low)
            and (v < high if high_open else v <= high)
        )

    return Check(f"a float in {lo}{low}, {high}{hi}", test)


def one_of(choices: Iterable[Any]) -> Check:
    """One of ``choices`` (strings get a did-you-mean hint)."""
    choices = tuple(choices)
    return Check(
        f"one of {', '.join(map(repr, choices))}",
        lambda v: any(v == c and type(v) is type(c) for c in choices),
        choices=choices,
    )


def literal(value: Any) -> Check:
    """Exactly ``value`` (``literal('auto') | int_at_least(1)``)."""
    return Check(repr(value), lambda v: v == value and type(v) is type(value), choices=(value,))


def instance_of(*types: type) -> Check:
    """An instance of one of ``types`` (a bool is never an int or a float)."""

    def test(v: Any) -> bool:
        if isinstance(v, bool) and bool not in types:
            return False
        return isinstance(v, types) or (float in types and is_number(v))

    return Check(" or ".join(_WORDS.get(t, f"a {t.__name__}") for t in types), test)


def optional(check: Check) -> Check:
    """``check``, or None."""
    return check | none


def sequence_of(check: Check, expects: str, min_length: int = 0) -> Check:
    """A list or tuple of at least ``min_length`` items, each passing ``check``;
    ``expects`` describes it (``'a list of positive ints'``)."""

    def test(v: Any) -> bool:
        return isinstance(v, (list, tuple)) and len(v) >= min_length and all(check.ok(x) for x in v)

    return Check(expects, test)


def folder_problem(value: Any, path: str, hint: str = "choose another folder") -> str | None:
    """Why the folder ``value`` could not be created or written to (a file in the way, no
    write permission, a read-only file system), as one message; None when it could, or
    when ``value`` is no path (its type is another check's). Creates nothing."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        return None
    target = probe = os.path.abspath(os.fspath(value))
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)  # the nearest folder that exists: makedirs starts there
    if not os.path.isdir(probe):
        why = (
            "it is a file, not a folder" if probe == target else f"{probe} is a file, not a folder"
        )
    elif not os.access(probe, os.W_OK | os.X_OK):
        why = f"{probe} is not writable (permissions or a read-only file system)"
    else:
        return None
    return f"{path}: cannot create or write to the folder {os.fspath(value)!r}: {why}; {hint}"
