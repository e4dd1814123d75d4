"""The dispatch table: stage -> hooks that implement it, in run order.

Hooks are sorted by (priority, registration order), so equal priorities keep the order
in which they were registered (default hooks first, then ``custom_hooks``). The table is
rebuilt only when a hook is registered; calling a stage is a loop over a ready list.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import did_you_mean
from .hook import Hook
from .priority import get_priority, priority_name
from .stages import STAGES

if TYPE_CHECKING:
    from ..runner.runner import Runner


class HookTable:
    def __init__(self) -> None:
        self._hooks: list[Hook] = []
        self._table: dict[str, list] = {s: [] for s in STAGES}

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
                f"distinct state_key so checkpoints can tell their state apart")
        # stable sort: equal priorities keep registration order
        self._hooks.append(hook)
        self._hooks.sort(key=lambda h: h.priority)
        self._table = {s: [getattr(h, s) for h in self._hooks if type(h).implements(s)]
                       for s in STAGES}
        return hook

    def call(self, stage: str, runner: Runner) -> None:
        for fn in self._table[stage]:
            fn(runner)

    def get(self, name: str) -> Hook:
        for h in self._hooks:
            if type(h).__name__ == name:
                return h
        raise KeyError(f"no hook '{name}' registered"
                       f"{did_you_mean(name, [type(h).__name__ for h in self._hooks])}")

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
