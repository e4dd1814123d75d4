"""The dispatch table: stage -> hooks that implement it, in run order.

Hooks are sorted by (priority, registration order), so equal priorities keep the order
in which they were registered (default hooks first, then ``custom_hooks``). The table is
rebuilt only when a hook is registered; calling a stage is a loop over a ready list, and
an exception names the hook that raised it (``e.acchooks_hook`` and a traceback note).

Timing is the :class:`~.timing.HookTimer`'s (``table.timer``): with timing on, the
table's lists for a stage are the timer's entries, which decide inside the call whether
it is timed; the runner calls every stage the same way, ``hooks.call(stage, runner)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import did_you_mean
from .hook import Hook
from .priority import get_priority, priority_name
from .stages import STAGES
from .timing import HookTimer, bare

if TYPE_CHECKING:
    from ..runner.runner import Runner

H = TypeVar("H", bound=Hook)


class HookTable:
    """The registered hooks of one runner: ``register``, ``find``/``get``, ``call`` a
    stage, ``describe`` (mmcv's startup table); ``timer`` measures them."""

    def __init__(self, timing: bool = True, sample_every: int | str = "auto", seed: int = 0):
        self._hooks: list[Hook] = []
        self._plain: dict[str, list] = {s: [] for s in STAGES}
        self._table: dict[str, Callable[[Runner], None]] = {}
        self.timer = HookTimer(timing, sample_every, seed)
        self._build()

    # ------------------------------------------------------------ registration
    @property
    def hooks(self) -> list[Hook]:
        """All registered hooks in run order."""
        return list(self._hooks)

    def register(self, hook: Hook, priority: int | str | None = None) -> Hook:
        if not isinstance(hook, Hook):
            raise TypeError(f"hooks must be Hook instances, got {type(hook).__name__}")
        if priority is not None:
            hook.priority = get_priority(priority)
        else:
            hook.priority = get_priority(getattr(hook, "priority", 50))
        keys = {h.state_key for h in self._hooks}
        if hook.state_key in keys and type(hook).state_dict is not Hook.state_dict:
            raise ValueError(
                f"two stateful hooks share state_key '{hook.state_key}'; give one of them a "
                f"distinct state_key so checkpoints can tell their state apart"
            )
        # stable sort: equal priorities keep registration order
        self._hooks.append(hook)
        self._hooks.sort(key=lambda h: h.priority)
        self._plain = {
            s: [getattr(h, s) for h in self._hooks if type(h).implements(s)] for s in STAGES
        }
        self._build()
        return hook

    def _build(self) -> None:
        """The dispatch lists: the bare bound methods, or the timer's entries."""
        self.timer.bind(self._hooks, self._plain)
        if self.timer.enabled:
            self._table = self.timer.entries()
        else:
            self._table = {s: bare(s, fns) for s, fns in self._plain.items()}

    def get(self, name: str) -> Hook:
        for h in self._hooks:
            if type(h).__name__ == name:
                return h
        raise KeyError(
            f"no hook '{name}' registered"
            f"{did_you_mean(name, [type(h).__name__ for h in self._hooks])}"
        )

    def find(self, cls: type[H]) -> list[H]:
        """The registered hooks that are instances of ``cls``, in run order."""
        return [h for h in self._hooks if isinstance(h, cls)]

    # ------------------------------------------------------------ dispatch
    def call(self, stage: str, runner: Runner) -> None:
        """Call every hook implementing ``stage`` (timed as the timer decides); an
        exception names the hook that raised it."""
        self._table[stage](runner)

    # ------------------------------------------------------------ timing (the timer's)
    def configure_timing(self, enable: bool = True, sample_every: int | str = "auto") -> None:
        """See :meth:`HookTimer.configure`."""
        self.timer.configure(enable, sample_every)
        self._build()

    @property
    def timing_enabled(self) -> bool:
        return self.timer.enabled

    def reset_timing(self) -> None:
        self.timer.reset()

    def timing(self) -> list[dict[str, Any]]:
        """See :meth:`HookTimer.timing`."""
        return self.timer.timing()

    def timing_report(self, wall_s: float | None = None, top: int | None = None) -> str:
        """See :meth:`HookTimer.report`."""
        return self.timer.report(wall_s, top=top)

    # ------------------------------------------------------------ description
    def describe(self) -> str:
        """mmcv's startup table: for each stage, the hooks that run there, in order."""
        lines = ["Hooks will be executed in the following order:"]
        for stage in STAGES:
            hooks = [h for h in self._hooks if type(h).implements(stage)]
            if not hooks:
                continue
            lines.append(f"{stage}:")
            lines.append("(priority) hook")
            lines.append("--------------------")
            lines.extend(f"({priority_name(h.priority):<12}) {type(h).__name__}" for h in hooks)
            lines.append("--------------------")
        return "\n".join(lines)
