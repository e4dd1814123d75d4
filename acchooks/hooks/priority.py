"""Hook priorities, as in mmcv: a lower value runs earlier."""

from __future__ import annotations

from enum import IntEnum

from ..errors import did_you_mean


class Priority(IntEnum):
    """Named priorities. Any int in [0, 100] is also a valid priority."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


def get_priority(priority: int | str | Priority) -> int:
    """Turn a name, an int in [0, 100] or a :class:`Priority` into its int value."""
    if isinstance(priority, Priority):
        return int(priority)
    if isinstance(priority, bool):  # bool is an int subclass; True is not a priority
        raise TypeError(
            f"priority must be a name, an int in [0, 100] or Priority, got {priority!r}"
        )
    if isinstance(priority, int):
        if not 0 <= priority <= 100:
            raise ValueError(
                f"priority must be between 0 and 100 (HIGHEST..LOWEST), got {priority}"
            )
        return priority
    if isinstance(priority, str):
        key = priority.strip().upper()
        if key in Priority.__members__:
            return int(Priority[key])
        names = ", ".join(f"{p.name} ({p.value})" for p in Priority)
        raise ValueError(
            f"unknown priority '{priority}'{did_you_mean(key, Priority.__members__)} "
            f"Valid names: {names}; or an int in [0, 100]"
        )
    raise TypeError(
        f"priority must be a name, an int in [0, 100] or Priority, got "
        f"{type(priority).__name__} {priority!r}"
    )


def priority_name(value: int) -> str:
    """``'NORMAL'`` for 50; plain ``'55'`` for values without a name."""
    try:
        return Priority(value).name
    except ValueError:
        return str(value)
