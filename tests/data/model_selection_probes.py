"""Test helpers for model selection (tests/test_model_selection.py), loaded through
``custom_imports``: an EvalHook whose accuracy follows a script, and a probe that
evaluates the raw and the EMA weights each on their own after EvalHook did."""

from __future__ import annotations

import json
import os

import torch

from acchooks import HOOKS, Hook
from acchooks.evaluation.metrics import evaluate
from acchooks.evaluation.predict import predict
from acchooks.hooks.evaluation import EvalHook


@HOOKS.register_module(force=True)
class ScriptedEvalHook(EvalHook):
    """EvalHook whose val scores make ``accuracy_top-1`` equal ``script[epoch]`` (percent
    of the val set's samples scored right), so the best-checkpoint ranking is known."""

    def __init__(self, script: list[float], **kwargs):
        super().__init__(**kwargs)
        self.script = list(script)

    def predict(self, runner) -> tuple[torch.Tensor, torch.Tensor]:
        _, targets = super().predict(runner)  # the real pass (and its gather)
        n, classes = len(targets), 4
        right = round(self.script[runner.epoch] * n / 100)
        pred = targets.clone()
        pred[right:] = (targets[right:] + 1) % classes
        return torch.nn.functional.one_hot(pred, classes).float(), targets


@HOOKS.register_module(force=True)
class AloneEvalProbe(Hook):
    """After EvalHook (register it at LOWEST): the metrics of the raw weights and of the
    EMA weights, each evaluated alone with ``acchooks.evaluation.predict``, appended per
    evaluation to ``<work_dir>/alone_rank<R>.json``."""

    def __init__(self, metric, metric_options=None):
        self.metric, self.metric_options = metric, metric_options or {}

    def after_train_epoch(self, runner) -> None:
        ev = next(h for h in runner.hooks.hooks if isinstance(h, EvalHook))
        ema = next(h for h in runner.hooks.hooks if type(h).__name__ == "EMAHook")
        got = {"raw": self._metrics(runner, ev)}
        ema.evaluate_with_ema, was = True, ema.evaluate_with_ema
        try:
            with ema.evaluation_weights(runner):
                got["ema"] = self._metrics(runner, ev)
        finally:
            ema.evaluate_with_ema = was
        path = os.path.join(runner.work_dir, f"alone_rank{runner.accelerator.process_index}.json")
        with open(path, "a") as f:
            f.write(json.dumps(got) + "\n")

    def _metrics(self, runner, ev) -> dict[str, float]:
        scores, targets = predict(runner.model, ev.dataloader, runner.accelerator)
        return evaluate(scores, targets, self.metric, self.metric_options)
