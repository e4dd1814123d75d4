"""MetricMonitor: one monitored evaluation metric, what counts as an improvement of it,
and the best value so far.

Shared by :class:`~.early_stopping.EarlyStoppingHook` and the ReduceLROnPlateau LR policy
(:mod:`.plateau`), which read the metrics EvalHook hands every hook through
:meth:`Hook.evaluation_results`. ``rule`` is ``'greater'`` or ``'less'``, inferred from
the metric's name as EvalHook's ``save_best`` does when not given. A score improves on the
best when it is better by *more* than ``delta``: ``best + delta`` (``'abs'``) or
``best * (1 + delta)`` (``'rel'``, torch's ReduceLROnPlateau threshold) for
``rule='greater'``, the mirror image for ``'less'``; an equal score never improves, so a
metric stuck at one value stalls. The first score that is not NaN always improves (no best yet).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..config.checks import number_at_least, one_of, optional, problems_of, string
from ..errors import ConfigError, did_you_mean
from .evaluation import RULES, infer_rule

DELTA_RULES = ("abs", "rel")


class MetricMonitor:
    """``monitor`` in the evaluation results, compared by ``rule`` with a ``delta`` margin
    (see the module docstring); ``best`` is checkpointed by the hook that owns it."""

    def __init__(
        self,
        monitor: str,
        rule: str | None,
        delta: float = 0.0,
        delta_rule: str = "abs",
        path: str = "",
    ):
        problems = problems_of(
            (string, monitor, f"{path}.monitor"),
            (optional(one_of(RULES)), rule, f"{path}.rule"),
            (number_at_least(0), delta, f"{path}.delta"),
            (one_of(DELTA_RULES), delta_rule, f"{path}.delta_rule"),
        )
        if problems:
            raise ConfigError(problems)
        self.rule = rule or infer_rule(monitor)
        if self.rule is None:
            raise ConfigError(
                f"{path}.rule: cannot infer whether '{monitor}' is better greater or less; "
                f"set rule='greater' or rule='less'"
            )
        self.monitor, self.delta, self.delta_rule, self.path = monitor, delta, delta_rule, path
        self.best: float | None = None

    def read(self, results: Mapping[str, float], strict: bool = True) -> float | None:
        """The monitored score in ``results``; when it is missing, a ConfigError naming the
        computed metrics (``strict``) or None."""
        if self.monitor in results:
            return float(results[self.monitor])
        if not strict:
            return None
        raise ConfigError(self.missing(results))

    def missing(self, results: Mapping[str, float]) -> str:
        """The message for a monitor key that ``results`` does not hold."""
        return (
            f"{self.path}.monitor: '{self.monitor}' is not among the computed metrics"
            f"{did_you_mean(self.monitor, results)} (available: {', '.join(results)}; "
            f"the evaluation config's metric and metric_options decide them)"
        )

    def better(self, score: float, than: float | None) -> bool:
        """Whether ``score`` improves on ``than`` by more than the margin (None: no best
        yet: any score but NaN improves)."""
        if than is None:
            return not math.isnan(score)
        greater = self.rule == "greater"
        if self.delta_rule == "rel":
            bound = than * (1 + self.delta) if greater else than * (1 - self.delta)
        else:
            bound = than + self.delta if greater else than - self.delta
        return score > bound if greater else score < bound

    def update(self, score: float) -> bool:
        """Fold ``score`` in: True (and a new best) when it improves."""
        improved = self.better(score, self.best)
        if improved:
            self.best = score
        return improved

    def beyond(self, score: float, threshold: float) -> bool:
        """Whether ``score`` is strictly better than ``threshold`` by the rule."""
        return score > threshold if self.rule == "greater" else score < threshold

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state.get("best")
        self.best = None if best is None else float(best)
