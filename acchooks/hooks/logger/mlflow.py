"""MlflowLoggerHook: metrics, params and the final weights to MLflow, as mmcv 1.x's hook,
on the main process.

Metrics carry TensorboardLoggerHook's tags (``train/loss``, ``val/accuracy_top-1``,
``learning_rate``, ``momentum``) at the same step, the global train iteration. The run
gets acchooks' config as params (flattened, ``optimizer.lr``) plus ``params``, the
config file as the artifact ``config.py``, and with ``log_model`` the newest checkpoint's
``model.safetensors`` as the artifact ``models/model.safetensors`` (no pickled model).

The tracking store is MLflow's: ``MLFLOW_TRACKING_URI`` (a server ``http://...``, or
``file:./mlruns`` with ``MLFLOW_ALLOW_FILE_STORE=true`` on MLflow >= 3), else MLflow's
default (a local ``sqlite`` file with the full ``mlflow`` package; ``mlflow-skinny``,
which ``acchooks[mlflow]`` installs, cannot open that one).

**Resume.** The run's id is saved in every checkpoint; a run resumed from one (``--resume
auto`` after a preemption, ``resume_from``) continues that MLflow run (its status goes
from ``KILLED`` back to ``RUNNING``, then ``FINISHED``), or starts a new run with a warning
if the tracking store does not have it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...registry import HOOKS
from .base import global_step, scalar_tags
from .wandb import _ExternalLoggerHook

if TYPE_CHECKING:
    from ...runner.runner import Runner

_PARAM_KEY = re.compile(r"^[\w./ -]{1,250}$")  # what MLflow accepts as a param name
_MAX_PARAM_VALUE = 6000  # MLflow's MAX_PARAM_VAL_LENGTH
_BATCH = 100  # params per log_batch request, MLflow's limit


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'optimizer': {'lr': 0.1}}`` -> ``{'optimizer.lr': 0.1}``; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


@HOOKS.register_module()
class MlflowLoggerHook(_ExternalLoggerHook):
    """``dict(type='MlflowLoggerHook', exp_name='resnet', tags=dict(team='a'),
    params=dict(note='baseline'), log_model=True)``: mmcv 1.x's arguments. ``exp_name``
    sets (and creates) the experiment, else MLflow's active or default one; a run already
    active (``mlflow.start_run()`` in your code, ``MLFLOW_RUN_ID``) is logged into and left
    open, a run the hook started is ended after training."""

    _package, _extra = "mlflow", "mlflow"

    def __init__(
        self,
        exp_name: str | None = None,
        tags: dict | None = None,
        params: dict | None = None,
        log_model: bool = True,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        by_epoch: bool = True,
    ):
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self._require_package()
        self.exp_name = exp_name
        self.tags = dict(tags or {})
        self.params = dict(params or {})
        self.log_model = log_model
        self.mlflow = None
        self._own_run = False

    def before_run(self, runner: Runner) -> None:
        if not runner.is_main_process:
            return
        import mlflow

        try:
            if self.exp_name is not None:
                mlflow.set_experiment(self.exp_name)
            self._own_run = mlflow.active_run() is None
            if self._own_run:
                self._start_run(mlflow, runner)
            self._run_id = mlflow.active_run().info.run_id
        except Exception as e:  # noqa: BLE001 - the store's own error, with what to do
            raise RuntimeError(
                f"MlflowLoggerHook: cannot open the MLflow tracking store "
                f"{mlflow.get_tracking_uri()!r}: {e}\nSet MLFLOW_TRACKING_URI to a tracking "
                f"server (http://host:5000), or to file:./mlruns with "
                f"MLFLOW_ALLOW_FILE_STORE=true, or install the full 'mlflow' package for its "
                f"default local sqlite store."
            ) from e
        self.mlflow = mlflow
        if self.tags:
            mlflow.set_tags(self.tags)
        self._log_params(runner)

    def _start_run(self, mlflow, runner) -> None:
        if self._run_id:  # resumed: continue the run the checkpoint was saved in
            try:
                mlflow.start_run(run_id=self._run_id)
                runner.logger.info(f"MlflowLoggerHook: continuing MLflow run {self._run_id}")
                return
            except Exception as e:  # noqa: BLE001 - e.g. another tracking store
                runner.logger.warning(
                    f"MlflowLoggerHook: cannot continue MLflow run "
                    f"{self._run_id} of the checkpoint ({e}); starting a "
                    f"new run"
                )
        mlflow.start_run()

    def _log_params(self, runner: Runner) -> None:
        params = flatten(runner.cfg.to_dict()) if runner.cfg is not None else {}
        params.update(self.params)
        kept, dropped = {}, []
        for k, v in params.items():
            if _PARAM_KEY.match(str(k)) and len(str(v)) <= _MAX_PARAM_VALUE:
                kept[str(k)] = str(v)
            else:
                dropped.append(str(k))
        if dropped:
            runner.logger.warning(
                f"MlflowLoggerHook: not logged as params (name or value too "
                f"long, or odd characters): {', '.join(dropped)}; the whole "
                f"config is the artifact config.py"
            )
        items = list(kept.items())
        try:
            for i in range(0, len(items), _BATCH):
                self.mlflow.log_params(dict(items[i : i + _BATCH]))
        except self.mlflow.exceptions.MlflowException as e:
            # a resumed run (MLFLOW_RUN_ID) whose config changed: params cannot change
            runner.logger.warning(f"MlflowLoggerHook: params not logged: {e}")
        if runner.cfg is not None:
            self.mlflow.log_text(runner.cfg.pretty_text, "config.py")

    def log(self, runner: Runner, record: dict[str, Any]) -> None:
        if self.mlflow is None:
            return
        tags = scalar_tags(record)
        if tags:
            self.mlflow.log_metrics(tags, step=global_step(runner))

    def after_run(self, runner: Runner) -> None:
        super().after_run(runner)
        if self.mlflow is None:
            return
        if self.log_model:
            self._log_weights(runner)
        if self._own_run:  # a run stopped for preemption (and resumable) is KILLED
            self.mlflow.end_run(status="KILLED" if runner.preempted else "FINISHED")
        self.mlflow = None

    def _log_weights(self, runner: Runner) -> None:
        from ...checkpoint import find_latest
        from ...checkpoint.format import MODEL_FILE

        root = runner.checkpointer.directory
        ckpt, _ = find_latest(root, verify="size")
        if ckpt is None or not (ckpt / MODEL_FILE).is_file():
            runner.logger.warning(
                f"MlflowLoggerHook: log_model=True but there is no "
                f"checkpoint under {root} (set checkpoint_config)"
            )
            return
        self.mlflow.log_artifact(os.fspath(ckpt / MODEL_FILE), artifact_path="models")
        self.mlflow.set_tag("acchooks.checkpoint", os.fspath(ckpt))
