"""LoggerHook: decides when to log and builds the record every logger writes.

Train iterations are averaged over the last ``interval`` iterations (and across
processes, once). Evaluation metrics published by EvalHook and the loss of a ``val``
workflow phase are logged at the end of their epoch. The runner clears the published
output after each stage, so several loggers see the same record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...config.checks import positive_int
from ..hook import Hook
from ..priority import Priority

if TYPE_CHECKING:
    from ...runner.runner import Runner


# not scalars to plot: the record's coordinates and timings
_SKIP = ("mode", "epoch", "iter", "step", "lr", "momentum", "time", "data_time")


def scalar_tags(record: dict[str, Any]) -> dict[str, float]:
    """TensorboardLoggerHook's tags of one record: ``<mode>/<name>`` for each number, and
    ``learning_rate``/``momentum`` for train records."""
    tags = {
        f"{record['mode']}/{k}": v
        for k, v in record.items()
        if k not in _SKIP and isinstance(v, (int, float))
    }
    if record["mode"] == "train":
        if "lr" in record:
            tags["learning_rate"] = record["lr"]
        if "momentum" in record:
            tags["momentum"] = record["momentum"]
    return tags


def global_step(runner) -> int:
    """The x axis: the global train iteration a record belongs to, the train iterations
    done (during ``after_train_iter`` that counts the current one, which ``runner.iter``
    does not yet)."""
    return runner.state.iters_done


class LoggerHook(Hook):
    """Base of the logger hooks: every ``interval`` iterations (and after each val phase or


    evaluation) it turns the log buffer into one record and calls :meth:`log`."""

    priority = Priority.VERY_LOW

    def __init__(
        self,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        by_epoch: bool = True,
    ):
        positive_int(interval, "log_config.interval")
        self.interval = interval
        self.ignore_last = ignore_last
        self.reset_flag = reset_flag  # kept for mmcv configs; the runner clears the output
        self.by_epoch = by_epoch

    def log(self, runner: Runner, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def _emit(self, runner: Runner) -> None:
        for rec in runner.log_buffer.records:
            self.log(runner, self.record(runner, rec))

    def after_train_iter(self, runner: Runner) -> None:
        # every_n_inner_iters / every_n_iters inlined: this runs every iteration
        buf, n = runner.log_buffer, self.interval
        i = runner.inner_iter if self.by_epoch and runner.by_epoch else runner.iter
        if (n > 0 and (i + 1) % n == 0) or (
            not self.ignore_last and runner.by_epoch and self.end_of_epoch(runner)
        ):
            buf.average(self.interval, mode="train")
        if buf.records:
            self._emit(runner)

    def after_train_epoch(self, runner: Runner) -> None:
        self._emit(runner)  # metrics published by EvalHook (LOW) before us (VERY_LOW)

    def after_val_epoch(self, runner: Runner) -> None:
        runner.log_buffer.average(0, mode="val", iters=runner.inner_iter + 1)
        self._emit(runner)

    def after_run(self, runner: Runner) -> None:
        self._emit(runner)

    @staticmethod
    def record(runner: Runner, published: dict[str, Any]) -> dict[str, Any]:
        """One log record: mode, epoch, iter, step, lr, momentum, then every value."""
        mode = published["mode"]
        # mmcv: during (or right after) a train epoch the epoch is 1-based runner.epoch + 1;
        # a val phase runs after the counter moved on, so it reports runner.epoch
        rec: dict[str, Any] = {
            "mode": mode,
            "epoch": runner.epoch + 1 if runner.mode == "train" else runner.epoch,
        }
        if mode == "train":
            rec["iter"] = runner.inner_iter + 1 if runner.by_epoch else runner.iter + 1
        elif runner.by_epoch:  # number of val batches
            rec["iter"] = published["iters"]
        else:  # the train iteration the evaluation belongs to
            rec["iter"] = runner.state.iters_done
        rec["step"] = runner.step
        lrs = runner.current_lr()
        if lrs:
            rec["lr"] = lrs[0]
            if len(set(lrs)) > 1:  # every group, by name, when they differ
                groups = runner.optimizer.param_groups
                rec.update(
                    {
                        f"lr_{g.get('name', f'group{i}')}": v
                        for i, (g, v) in enumerate(zip(groups, lrs, strict=True))
                    }
                )
        mom = runner.current_momentum()
        if mom:
            rec["momentum"] = mom[0]
        rec.update(published["values"])
        return rec
