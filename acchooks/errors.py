"""Error types for user input and the "did you mean" helper every message uses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The registered/allowed names closest to ``name`` (best first)."""
    choices = [str(c) for c in choices]
    found = difflib.get_close_matches(str(name), choices, n=n, cutoff=0.6)
    if not found:  # case-insensitive second chance: 'sgd' -> 'SGD'
        lower = {c.lower(): c for c in choices}
        found = [
            lower[m] for m in difflib.get_close_matches(str(name).lower(), lower, n=n, cutoff=0.6)
        ]
    return found


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` or an empty string when nothing is close."""
    found = closest(name, choices, n=1)
    return f"; did you mean '{found[0]}'?" if found else ""


class ConfigError(ValueError):
    """Problems found in a config, all reported together.

    ``problems`` holds one line per problem, each starting with the dotted path of the
    offending key (``custom_hooks[1] (EMAHook): unexpected argument 'intervl'; ...``).
    """

    def __init__(self, problems: str | list[str], source: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        head = f"{len(self.problems)} problem(s) in config {source}" if source else "config error"
        if len(self.problems) == 1 and source is None:
            super().__init__(self.problems[0])
        else:
            super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class RunError(RuntimeError):
    """A run stopped for a reason the user can act on (a corrupt image, a non-finite loss
    under ``nonfinite='raise'``): the CLI prints the message alone and exits 1.

    ``every_process``: every process raises the same error (a joint decision), so only the
    main process reports it. A copy re-raised from a DataLoader worker, whose text is the
    worker's traceback, is cut back to the original one-line message."""

    every_process = False

    def __init__(self, message: str):
        if message.startswith("Caught ") and "Original Traceback" in message:
            original = message.rpartition(f"{type(self).__name__}: ")[2].strip()
            message = original.splitlines()[0] if original else message
        super().__init__(message)


class DataError(RunError):
    """A sample that cannot be loaded; the message names the dataset, the file and the
    sample's index."""


class NonFiniteError(RunError, FloatingPointError):
    """A NaN/inf loss or gradient under ``optimizer_config.nonfinite='raise'``; decided by
    all processes together, so every process raises it."""

    every_process = True
