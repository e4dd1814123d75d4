"""EvalHook: evaluate on the val set after train epochs (or iterations), mmcv semantics.

Every process runs its shard; ``accelerator.gather_for_metrics`` brings the predictions
together exactly once per sample (the distributed sampler's padding is dropped), so the
metrics equal a single-process run. With ``save_best`` the best weights are kept as
``best_<metric>_epoch_<N>`` (``_iter_`` for iteration-based runs).

Scores are softmax probabilities (sigmoid ones for multi-hot targets), as mmcls's heads
return them, so ``thrs``/``thr`` mean the same as there. Every hook's ``evaluation_weights(runner)`` context (EMAHook's swaps the
EMA in) is entered around the evaluation and the best-checkpoint save, so the metrics
and the best weights are those of the weights in the model then; a hook's
``evaluation_progress`` (ProgressBarHook's bar) sees every evaluated batch.

``out_dir`` has mmcv's meaning (>= 1.3.16), as CheckpointHook's: best checkpoints go to
``<out_dir>/<basename of work_dir>``, or to the work dir when it is None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import torch

from ..config.checks import non_negative_int, one_of, optional, positive_int, problems_of
from ..errors import ConfigError
from ..evaluation.metrics import check_metrics, evaluate
from ..evaluation.predict import predict
from ..registry import HOOKS
from .hook import Hook
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


# mmcv's defaults (plus recall and f1): a metric named like one of these is "greater is
# better" / "less is better"; exact names first, then substrings, greater before less
GREATER_KEYS = (
    "acc",
    "top",
    "AR@",
    "auc",
    "precision",
    "mAP",
    "mDice",
    "mIoU",
    "mAcc",
    "aAcc",
    "recall",
    "f1",
)
LESS_KEYS = ("loss",)
RULES = ("greater", "less")  # evaluation.rule; None: inferred from the metric name


def infer_rule(key: str, greater_keys=GREATER_KEYS, less_keys=LESS_KEYS) -> str | None:
    """mmcv's ``EvalHook._init_rule``: 'greater', 'less' or None when it cannot tell."""
    k = key.lower()
    greater, less = [g.lower() for g in greater_keys], [x.lower() for x in less_keys]
    if k in greater:
        return "greater"
    if k in less:
        return "less"
    if any(g in k for g in greater):
        return "greater"
    if any(x in k for x in less):
        return "less"
    return None


@HOOKS.register_module()
class EvalHook(Hook):
    """``evaluation=dict(interval=1, metric='accuracy', save_best='auto')``: metrics on the
    val set after train epochs (or iterations), the best checkpoint kept (module docstring)."""

    priority = Priority.LOW

    def __init__(
        self,
        dataloader=None,
        interval: int = 1,
        start: int | None = None,
        by_epoch: bool = True,
        metric: str | list[str] = "accuracy",
        metric_options: dict | None = None,
        save_best: bool | str | None = None,
        rule: str | None = None,
        out_dir: str | None = None,
        greater_keys: list[str] | None = None,
        less_keys: list[str] | None = None,
    ):
        problems = check_metrics(metric, metric_options, "evaluation") + problems_of(
            (positive_int, interval, "evaluation.interval"),
            (optional(non_negative_int), start, "evaluation.start"),
            (optional(one_of(RULES)), rule, "evaluation.rule"),
        )
        if problems:
            raise ConfigError(problems)
        self.dataloader = dataloader
        self._on_batch = None  # the progress bar's callback during an evaluation
        self.interval, self.start, self.by_epoch = interval, start, by_epoch
        self.metric, self.metric_options = metric, metric_options or {}
        self.save_best, self.rule, self.out_dir = save_best, rule, out_dir
        # mmcv: user keys extend the defaults
        self.greater_keys = GREATER_KEYS + tuple(greater_keys or ())
        self.less_keys = LESS_KEYS + tuple(less_keys or ())
        self.best_score: float | None = None
        self.best_ckpt: str | None = None
        self.key_indicator: str | None = None

    def _should_evaluate(self, runner: Runner) -> bool:
        current = runner.epoch if self.by_epoch else runner.iter
        if self.start is None:
            return (current + 1) % self.interval == 0
        return current + 1 >= self.start and (current + 1 - self.start) % self.interval == 0

    def after_train_epoch(self, runner: Runner) -> None:
        if self.by_epoch and self._should_evaluate(runner):
            self._evaluate_and_publish(runner)

    def after_train_iter(self, runner: Runner) -> None:
        if not self.by_epoch and self._should_evaluate(runner):
            self._evaluate_and_publish(runner)

    def predict(self, runner: Runner) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and targets of the whole val set, gathered from every process."""
        return predict(runner.model, self.dataloader, runner.accelerator, on_batch=self._on_batch)

    def wrap_dataloaders(self, wrap: Callable[[Iterable], Iterable]) -> None:
        self.dataloader = wrap(self.dataloader)

    def _progress(self, runner: Runner, stack: ExitStack) -> Callable[[], None] | None:
        """Enter every hook's ``evaluation_progress`` context in ``stack``; the callback
        to call after each evaluated batch (None when no hook offers one)."""
        total = len(self.dataloader)
        found = [
            stack.enter_context(h.evaluation_progress(runner, total)) for h in runner.hooks.hooks
        ]
        callbacks = [c for c in found if c is not None]
        if not callbacks:
            return None
        if len(callbacks) == 1:
            return callbacks[0]
        return lambda: [c() for c in callbacks]

    @staticmethod
    def _weights_context(runner: Runner) -> ExitStack:
        """Enter every registered hook's ``evaluation_weights`` context (EMA weights)."""
        stack = ExitStack()
        for hook in runner.hooks.hooks:
            stack.enter_context(hook.evaluation_weights(runner))
        return stack

    def _evaluate_and_publish(self, runner: Runner) -> None:
        with self._weights_context(runner):
            with ExitStack() as bars:
                self._on_batch = self._progress(runner, bars)
                try:
                    scores, targets = self.predict(runner)
                finally:
                    self._on_batch = None
            results = evaluate(scores, targets, self.metric, self.metric_options)
            runner.log_buffer.put(results, mode="val", iters=len(self.dataloader))
            if self.save_best:
                self._save_best(runner, results)

    def _save_best(self, runner: Runner, results: dict[str, float]) -> None:
        key = next(iter(results)) if self.save_best in (True, "auto") else self.save_best
        if key not in results:
            raise ConfigError(
                f"evaluation.save_best: '{key}' is not among the computed metrics {list(results)}"
            )
        self.key_indicator = key
        rule = self.rule or infer_rule(key, self.greater_keys, self.less_keys)
        if rule is None:
            raise ConfigError(
                f"evaluation.rule: cannot infer whether '{key}' is better greater "
                f"or less; set rule='greater' or rule='less'"
            )
        score = results[key]
        better = self.best_score is None or (
            score > self.best_score if rule == "greater" else score < self.best_score
        )
        if not better or math.isnan(score):
            return
        self.best_score = score
        unit = "epoch" if self.by_epoch else "iter"
        n = runner.epoch + 1 if self.by_epoch else runner.iter + 1
        name = f"best_{key}_{unit}_{n}"
        previous = self.best_ckpt
        checkpointer = runner.checkpointer
        self.best_ckpt = checkpointer.save(
            name, weights_only=True, latest=False, directory=checkpointer.dir_for(self.out_dir)
        )
        if previous and previous != self.best_ckpt:
            checkpointer.remove(previous)
        runner.logger.info(f"Now best checkpoint is saved as {name} ({key}: {score:.4f}).")
        runner.log_buffer.put({f"best_{key}": score}, mode="val")

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score,
            "best_ckpt": self.best_ckpt,
            "key_indicator": self.key_indicator,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score = state.get("best_score")
        self.best_ckpt = state.get("best_ckpt")
        self.key_indicator = state.get("key_indicator")
