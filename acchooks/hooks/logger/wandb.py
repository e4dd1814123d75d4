"""WandbLoggerHook: metrics to Weights & Biases, as mmcv 1.x's hook, on the main process.

Tags are TensorboardLoggerHook's (``train/loss``, ``val/accuracy_top-1``,
``learning_rate``, ``momentum``) and the W&B step is the global train iteration a record
belongs to (:func:`global_step`, shared with MlflowLoggerHook). The last train log of an epoch, the evaluation after it and a val phase's loss share
that iteration, and W&B drops a ``log`` whose step is below the last committed one; so
every record is logged with ``commit=False`` and W&B commits a step's row when a later
step arrives or the run finishes: one row per iteration, holding every record of it.

``wandb`` is an optional extra (``pip install 'acchooks[wandb]'``); it is imported in
``before_run`` only, and a missing package is a config error before training starts.

**Resume.** The run's id is saved in every checkpoint; a run resumed from one (``--resume
auto`` after a preemption, ``resume_from``) logs into the same W&B run
(``wandb.init(id=..., resume='allow')``) unless ``init_kwargs`` sets ``id`` or ``resume``.
A run stopped for preemption is marked as preempting (``run.mark_preempting()``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...registry import HOOKS
from .base import LoggerHook, global_step, scalar_tags

if TYPE_CHECKING:
    from ...runner.runner import Runner


_SUMMARIES = ("min", "max", "mean", "best", "last", "none")


def missing_package(cls: type, package: str, extra: str, path: str | None = None) -> str | None:
    """The one-line problem for a hook whose optional package is not installed, or None."""
    if importlib.util.find_spec(package) is not None:
        return None
    where = f"{path} ({cls.__name__})" if path else cls.__name__
    return f"{where}: needs the '{package}' package: pip install 'acchooks[{extra}]'"


def _bad_summaries(define_metric_cfg: Mapping | None, where: str) -> list[str]:
    return [
        f"{where}: define_metric_cfg['{m}']: summary {s!r} is not one of {', '.join(_SUMMARIES)}"
        for m, s in (define_metric_cfg or {}).items()
        if s not in _SUMMARIES
    ]


class _ExternalLoggerHook(LoggerHook):
    """A logger hook backed by an optional package, checked when the config is."""

    _package: str
    _extra: str
    # the tracker's id of this run, saved in checkpoints: a resumed run logs into it
    _run_id: str | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self._run_id} if self._run_id else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._run_id = state.get("run_id") or None

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str | None = None) -> list[str]:
        from ...config.schema import check_args

        problems = check_args(cls, cfg, path or cls.__name__, cls.__name__)
        missing = missing_package(cls, cls._package, cls._extra, path)
        return problems + ([missing] if missing else [])

    def _require_package(self) -> None:
        missing = missing_package(type(self), self._package, self._extra)
        if missing:
            raise ImportError(missing)


@HOOKS.register_module()
class WandbLoggerHook(_ExternalLoggerHook):
    """``dict(type='WandbLoggerHook', init_kwargs=dict(project='p'), ...)``: mmcv 1.x's
    arguments. ``init_kwargs`` go to ``wandb.init``; the run's config is acchooks' config
    (keys in ``init_kwargs['config']`` win). ``with_step=False`` logs the iteration as
    ``global_step`` instead of the W&B step, one row per record, committed as ``commit``
    says (with the step, W&B commits each row when the step moves on, see above).
    ``log_artifact`` uploads the work dir's files ending in ``out_suffix`` (logs, dumped
    config) as the artifact ``artifacts`` after the run.
    ``define_metric_cfg={'val/accuracy_top-1': 'max'}`` sets W&B summaries."""

    _package, _extra = "wandb", "wandb"

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str | None = None) -> list[str]:
        problems = super().check_config(cfg, path)
        if isinstance(cfg.get("define_metric_cfg"), Mapping):
            problems += _bad_summaries(
                cfg["define_metric_cfg"], f"{path} ({cls.__name__})" if path else cls.__name__
            )
        return problems

    def __init__(
        self,
        init_kwargs: dict | None = None,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        commit: bool = True,
        by_epoch: bool = True,
        with_step: bool = True,
        log_artifact: bool = True,
        out_suffix: str | tuple | list = (".log.json", ".log", ".py"),
        define_metric_cfg: dict | None = None,
    ):
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self._require_package()
        bad = _bad_summaries(define_metric_cfg, "WandbLoggerHook")
        if bad:
            raise ValueError(bad[0])
        self.init_kwargs = dict(init_kwargs or {})
        self.commit = commit
        self.with_step = with_step
        self.log_artifact = log_artifact
        self.out_suffix = (out_suffix,) if isinstance(out_suffix, str) else tuple(out_suffix)
        self.define_metric_cfg = dict(define_metric_cfg or {})
        self.run = None

    def before_run(self, runner: Runner) -> None:
        if not runner.is_main_process:
            return
        import wandb

        kwargs = dict(self.init_kwargs)
        if self._run_id and not {"id", "resume", "resume_from", "fork_from"} & set(kwargs):
            kwargs.update(id=self._run_id, resume="allow")
        user_config = kwargs.get("config")
        if runner.cfg is not None and (user_config is None or isinstance(user_config, Mapping)):
            kwargs["config"] = {**runner.cfg.to_dict(), **(user_config or {})}
        self.run = wandb.init(**kwargs)
        self._run_id = self.run.id
        for metric, summary in self.define_metric_cfg.items():
            self.run.define_metric(metric, summary=summary)

    def log(self, runner: Runner, record: dict[str, Any]) -> None:
        if self.run is None:
            return
        tags = scalar_tags(record)
        if not tags:
            return
        step = global_step(runner)
        if self.with_step:
            # a committed row closes its step and W&B would drop later records of that
            # step: W&B commits the row itself when a later step comes (or at finish)
            self.run.log(tags, step=step, commit=False)
        else:
            self.run.log({**tags, "global_step": step}, commit=self.commit)

    def after_run(self, runner: Runner) -> None:
        super().after_run(runner)
        if self.run is None:
            return
        if self.log_artifact:
            import wandb

            artifact = wandb.Artifact(name="artifacts", type="model")
            for path in self._artifact_files(runner.work_dir):
                artifact.add_file(path, name=os.path.relpath(path, runner.work_dir))
            self.run.log_artifact(artifact)
        if runner.preempted and hasattr(self.run, "mark_preempting"):
            self.run.mark_preempting()  # W&B shows it as preempted, resumable
        self.run.finish()
        self.run = None

    def _artifact_files(self, work_dir: str) -> list[str]:
        """Files under the work dir ending in ``out_suffix`` (recursively, as mmcv), except
        hidden entries and W&B's own run directory."""
        skip = os.path.realpath(self.run.settings.wandb_dir) if self.run is not None else None
        found = []
        for root, dirs, files in os.walk(work_dir):
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) != skip
            )
            found += [
                os.path.join(root, f)
                for f in sorted(files)
                if f.endswith(self.out_suffix) and not f.startswith(".")
            ]
        return found
