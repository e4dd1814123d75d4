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
``max_keep_best=k`` keeps the ``k`` best of them, resumably (:mod:`.best_checkpoints`).

``both_weights=True`` (the default; timm validates the raw and the EMA weights every
epoch): every set of weights a hook offers through ``evaluation_other_weights`` (EMAHook:
the one it does not evaluate) is evaluated in the same pass over the data
(:mod:`acchooks.evaluation.weight_sets`) and logged with its name as prefix
(``raw_accuracy_top-1``, ``ema_accuracy_top-1``); the metrics of the evaluated weights keep
their names, and they alone choose the best checkpoints.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import torch

from ..config.checks import (
    boolean,
    non_negative_int,
    one_of,
    optional,
    positive_int,
    problems_of,
)
from ..errors import ConfigError
from ..evaluation.metrics import check_metrics, evaluate
from ..evaluation.predict import predict
from ..evaluation.weight_sets import WeightSet, predict_sets
from ..registry import HOOKS
from .best_checkpoints import BestCheckpoints, ranking_saved_at
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
        max_keep_best: int = 1,
        both_weights: bool = True,
    ):
        problems = check_metrics(metric, metric_options, "evaluation") + problems_of(
            (positive_int, interval, "evaluation.interval"),
            (optional(non_negative_int), start, "evaluation.start"),
            (optional(one_of(RULES)), rule, "evaluation.rule"),
            (positive_int.noted("1: the single best"), max_keep_best, "evaluation.max_keep_best"),
            (boolean, both_weights, "evaluation.both_weights"),
        )
        if max_keep_best != 1 and not save_best:
            problems.append(
                "evaluation.max_keep_best: set, but save_best is not; add save_best='auto' "
                "(or a metric name) to keep the best checkpoints"
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
        self.both_weights = both_weights
        self.best = BestCheckpoints(max_keep_best)  # the kept best checkpoints, best first
        self.best_score: float | None = None
        self.best_ckpt: str | None = None
        self.key_indicator: str | None = None
        self._resumed = False  # load_state_dict ran: before_run completes the ranking

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

    def _other_weights(self, runner: Runner, stack: ExitStack) -> list[WeightSet]:
        """Enter every hook's ``evaluation_other_weights`` in ``stack`` (``both_weights``):
        the other sets of weights to evaluate in the same pass."""
        if not self.both_weights:
            return []
        found = [
            stack.enter_context(h.evaluation_other_weights(runner)) for h in runner.hooks.hooks
        ]
        sets = [s for s in found if s is not None]
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise ConfigError(f"evaluation.both_weights: two hooks offer weights named {names}")
        return sets

    def _evaluate_all(self, runner: Runner) -> tuple[dict[str, float], dict[str, float]]:
        """The metrics of the weights in the model and, prefixed by their names, those of
        every other set offered (one pass over the data)."""
        with ExitStack() as stack:
            others = self._other_weights(runner, stack)
            self._on_batch = self._progress(runner, stack)
            try:
                if not others:
                    return evaluate(*self.predict(runner), self.metric, self.metric_options), {}
                own, other, targets = predict_sets(
                    runner.model, self.dataloader, runner.accelerator, others, self._on_batch
                )
            finally:
                self._on_batch = None
        extra = {
            f"{name}_{k}": v
            for name, scores in other.items()
            for k, v in evaluate(scores, targets, self.metric, self.metric_options).items()
        }
        return evaluate(own, targets, self.metric, self.metric_options), extra

    def _evaluate_and_publish(self, runner: Runner) -> None:
        with self._weights_context(runner):
            own, extra = self._evaluate_all(runner)
            results = {**own, **extra}
            runner.log_buffer.put(results, mode="val", iters=len(self.dataloader))
            for hook in runner.hooks.hooks:  # early stopping, plateau LR (Hook protocol)
                hook.evaluation_results(runner, results)
            if self.save_best:
                self._save_best(runner, own, extra)

    def _key_and_rule(self, results: dict[str, float], extra: dict[str, float]) -> tuple[str, str]:
        """The metric ``save_best`` names (the first with True/'auto') and its rule."""
        key = next(iter(results)) if self.save_best in (True, "auto") else self.save_best
        if key in extra:
            raise ConfigError(
                f"evaluation.save_best: '{key}' is a metric of the weights evaluated besides "
                f"(both_weights); best checkpoints hold the evaluated ones: name one of "
                f"{list(results)}, or choose the weights EvalHook evaluates (EMAHook's "
                f"evaluate_with_ema)"
            )
        if key not in results:
            raise ConfigError(
                f"evaluation.save_best: '{key}' is not among the computed metrics {list(results)}"
            )
        rule = self.rule or infer_rule(key, self.greater_keys, self.less_keys)
        if rule is None:
            raise ConfigError(
                f"evaluation.rule: cannot infer whether '{key}' is better greater "
                f"or less; set rule='greater' or rule='less'"
            )
        return key, rule

    def _save_best(
        self, runner: Runner, results: dict[str, float], extra: dict[str, float] | None = None
    ) -> None:
        key, rule = self._key_and_rule(results, extra or {})
        self.key_indicator = key
        score = results[key]
        if not self.best.admits(score, rule):
            return
        unit = "epoch" if self.by_epoch else "iter"
        n = runner.epoch + 1 if self.by_epoch else runner.iter + 1
        name = f"best_{key}_{unit}_{n}"
        checkpointer = runner.checkpointer
        directory = checkpointer.dir_for(self.out_dir)
        before = self.best.state_dict()
        # ranked before the save: the checkpoint records the ranking that includes it
        path = osp.join(directory, name)
        dropped = self.best.insert(path, score, rule)
        self._sync_best()
        try:
            checkpointer.save(
                name, weights_only=True, latest=False, directory=directory, background=False
            )
        except BaseException:
            self.best.load_state_dict({"best_ckpts": before})
            self._sync_best()
            raise
        k = self.best.keep
        self._retain(runner, dropped)
        if self.best.paths[0] == path:
            runner.logger.info(f"Now best checkpoint is saved as {name} ({key}: {score:.4f}).")
            runner.log_buffer.put({f"best_{key}": score}, mode="val")
        else:
            runner.logger.info(f"Saved {name} ({key}: {score:.4f}), among the {k} best.")

    def _sync_best(self) -> None:
        """``best_score``/``best_ckpt``: the top of the ranking (mmcv's names)."""
        top = self.best.entries[0] if self.best.entries else {}
        self.best_score, self.best_ckpt = top.get("score"), top.get("path")

    def before_run(self, runner: Runner) -> None:
        """After a resume: adopt the ranking of a best checkpoint written at the resumed
        iteration (checkpoints of acchooks before CheckpointHook saved after the stage lack
        it), and finish a rotation a kill interrupted (:mod:`.best_checkpoints`)."""
        if not (self._resumed and self.save_best):
            return
        unit, n = ("epoch", runner.epoch) if self.by_epoch else ("iter", runner.iter)
        directory = runner.checkpointer.dir_for(self.out_dir)
        saved = ranking_saved_at(directory, f"_{unit}_{n}", runner.iter, self.state_key)
        known = self.best.paths
        if saved is not None and saved.get("best_ckpts") != self.best.state_dict():
            self.load_state_dict(saved)
            runner.logger.info(
                f"EvalHook: the best checkpoints as of {unit} {n} (from the best checkpoint "
                f"of that {unit}): {[osp.basename(p) for p in self.best.paths]}"
            )
        k = self.best.keep
        self.best.entries = self.best.entries[:k]  # max_keep_best may be smaller now
        self._sync_best()
        self._retain(runner, known)

    def _retain(self, runner: Runner, dropped: list[str]) -> None:
        """Have the Checkpointer remove the ``dropped`` best checkpoints not ranked now."""
        gone = [p for p in dropped if p not in self.best.paths and osp.exists(p)]
        runner.checkpointer.retain_best(self.best.paths, dropped)
        for p in gone:
            runner.logger.info(
                f"removed {osp.basename(p)}: no longer among the {self.best.keep} best"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score,
            "best_ckpt": self.best_ckpt,
            "key_indicator": self.key_indicator,
            "best_ckpts": self.best.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best.load_state_dict(state)
        self._sync_best()
        self.key_indicator = state.get("key_indicator")
        self._resumed = True
