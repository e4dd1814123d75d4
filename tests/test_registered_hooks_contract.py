"""The contract of every hook registered in ``acchooks.HOOKS``, run over the registry.

For each built-in hook:

* it builds from a config dict, ``HOOKS.build(dict(type=Name, ...))``, with the minimal
  arguments of :data:`CASES`;
* its state survives a checkpoint: a tiny run with the hook registered where users put
  it (``custom_hooks`` or its config key) saves ``epoch_2``; a fresh run resumed from
  that directory holds a hook whose ``state_dict()`` equals the state in the checkpoint
  (tensors compared with ``torch.equal``), both before any hook has run and after the
  hooks' ``before_run``, before the first train epoch. For the hooks whose
  state changes during training (``evolves``) the saved state must differ from a newly
  built hook's, so the resume has really restored something.

Every built-in hook must be in :data:`CASES` or in :data:`NOT_IN_A_TINY_RUN` (with the
reason): registering a new hook without adding it here fails the suite. A round trip
that a known bug breaks is a strict xfail naming the bug (``Case.known_bug``), so the
fix shows up as an XPASS failure and the mark gets removed.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

import acchooks.runner  # noqa: F401 - any hook registered by the runner's modules, too
from acchooks import HOOKS, Hook
from acchooks.errors import ConfigError
from acchooks.testing import run_config, tiny_config


@dataclass(frozen=True)
class Case:
    """How a hook is registered in the tiny run, and with which arguments."""

    key: str  # 'custom_hooks', a config key (lr_config, log_config, ...), or 'always'
    args: dict[str, Any] = field(default_factory=dict)  # the minimal constructor arguments
    evolves: bool = False  # the saved state differs from a newly built hook's
    package: str | None = None  # an optional extra it needs
    built: str | None = None  # the class the config key builds for it, if not its own
    known_bug: str | None = None  # why its round trip fails now (a strict xfail)


def _custom(**args: Any) -> Case:
    return Case("custom_hooks", args)


CASES: dict[str, Case] = {
    # default hooks, from their config keys
    "OptimizerHook": Case("optimizer_config"),
    "GradientCumulativeOptimizerHook": Case("optimizer_config", dict(cumulative_iters=2)),
    "LrUpdaterHook": Case("lr_config", dict(policy="step", step=[1])),
    "MomentumUpdaterHook": Case("momentum_config", dict(policy="step", step=[1])),
    "CheckpointHook": Case("checkpoint_config", dict(interval=1)),
    "IterTimerHook": Case("always"),
    "EvalHook": Case("evaluation", dict(interval=1, save_best="auto"), evolves=True),
    "TextLoggerHook": Case("log_config"),
    "TensorboardLoggerHook": Case("log_config"),
    "WandbLoggerHook": Case("log_config", evolves=True, package="wandb"),
    "MlflowLoggerHook": Case("log_config", evolves=True, package="mlflow"),
    "ProgressBarHook": Case("progress_config", dict(mode="lines")),
    # the tutorial's custom hooks
    "EMAHook": Case("custom_hooks", evolves=True),
    "SyncBuffersHook": _custom(),
    "EmptyCacheHook": _custom(),
    "ProfilerHook": _custom(by_epoch=False, profile_iters=1, activities=["cpu"]),
    # MMClassification's (stateless: every `interval` epochs, from the epoch counter)
    "PreciseBNHook": _custom(num_samples=8),
    # batch mixing, from the top-level `mixup` key (stateless: draws seeded per batch)
    "MixupHook": Case("mixup", dict(mixup_alpha=0.2, cutmix_alpha=1.0)),
    # mmcv's per-policy names. `lr_config=dict(type='StepLrUpdaterHook')` builds an
    # LrUpdaterHook, so the classes themselves run from custom_hooks.
    "FixedLrUpdaterHook": _custom(),
    "StepLrUpdaterHook": _custom(step=[1]),
    "ExpLrUpdaterHook": _custom(gamma=0.9),
    "PolyLrUpdaterHook": _custom(),
    "InvLrUpdaterHook": _custom(gamma=0.1),
    "CosineAnnealingLrUpdaterHook": _custom(min_lr=0.0),
    "LinearAnnealingLrUpdaterHook": _custom(min_lr=0.0),
    "FlatCosineAnnealingLrUpdaterHook": _custom(min_lr=0.0),
    "CosineRestartLrUpdaterHook": _custom(periods=[2, 2], restart_weights=[1, 0.5], min_lr=0.0),
    "CyclicLrUpdaterHook": _custom(),
    "OneCycleLrUpdaterHook": _custom(max_lr=0.1),
    "CosineAnnealingCooldownLrUpdaterHook": _custom(min_lr=0.0, cool_down_time=1),
    # fed by evaluation results (none in the tiny run: tests/test_plateau_lr.py and
    # tests/test_early_stopping.py check that their state evolves and resumes)
    "ReduceLROnPlateauLrUpdaterHook": _custom(monitor="accuracy_top-1"),
    "EarlyStoppingHook": _custom(monitor="accuracy_top-1"),
    # ... and mmcv's per-policy momentum names, also from custom_hooks
    "StepMomentumUpdaterHook": _custom(step=[1]),
    "CosineAnnealingMomentumUpdaterHook": _custom(min_momentum_ratio=0.5),
    "LinearAnnealingMomentumUpdaterHook": _custom(min_momentum_ratio=0.5),
    "CyclicMomentumUpdaterHook": _custom(),
    "OneCycleMomentumUpdaterHook": _custom(),
}

# name -> why it cannot run in a tiny CPU run (none so far: every built-in hook can)
NOT_IN_A_TINY_RUN: dict[str, str] = {}


def builtin_hooks() -> list[str]:
    """The registered hooks that acchooks itself defines (not those tests register)."""
    return sorted(n for n in HOOKS.keys() if HOOKS.get(n).__module__.startswith("acchooks."))


def test_every_registered_hook_is_covered():
    builtin = set(builtin_hooks())
    unlisted = sorted(builtin - set(CASES) - set(NOT_IN_A_TINY_RUN))
    assert not unlisted, (
        f"hooks registered in HOOKS but not covered here: {unlisted}; add each to CASES "
        f"(with its minimal arguments) or to NOT_IN_A_TINY_RUN (with the reason)"
    )
    assert not set(CASES) & set(NOT_IN_A_TINY_RUN)
    stale = sorted((set(CASES) | set(NOT_IN_A_TINY_RUN)) - builtin)
    assert not stale, f"listed here but no longer registered: {stale}"


def case_of(name: str) -> Case:
    if name in NOT_IN_A_TINY_RUN:
        pytest.skip(f"{name}: {NOT_IN_A_TINY_RUN[name]}")
    if name not in CASES:
        pytest.fail(f"{name} is registered but not in CASES (nor in NOT_IN_A_TINY_RUN)")
    case = CASES[name]
    if case.package:
        pytest.importorskip(case.package)
    return case


@pytest.fixture
def external_loggers_offline(tmp_path, monkeypatch):
    """W&B offline and MLflow on a local file store, both under ``tmp_path``."""
    for k, v in dict(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_CONSOLE="off",
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        WANDB_DIR=str(tmp_path),
        MLFLOW_TRACKING_URI=(tmp_path / "mlruns").as_uri(),
        MLFLOW_ALLOW_FILE_STORE="true",
    ).items():
        monkeypatch.setenv(k, v)
    # MLflow remembers the last set_experiment() of the process (another test's store), in
    # a module global and in the environment
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is not None and hasattr(fluent, "_active_experiment_id"):
        monkeypatch.setattr(fluent, "_active_experiment_id", None)


@pytest.mark.parametrize("name", builtin_hooks())
def test_builds_from_a_config_dict(name):
    case = case_of(name)
    hook = HOOKS.build(dict(type=name, **copy.deepcopy(case.args)))
    assert type(hook) is HOOKS.get(name) and isinstance(hook, Hook)
    assert isinstance(hook.state_dict(), dict)


# ---------------------------------------------------------------- state round trip
# 2 train batches and 1 val batch per epoch; every epoch is checkpointed
BASE: dict[str, Any] = dict(
    data=dict(train=dict(num_samples=16), val=dict(num_samples=8)),
    runner=dict(max_epochs=2),
    checkpoint_config=dict(interval=1),
    progress_config=dict(enable=False),
)


def registration(name: str, case: Case) -> dict[str, Any]:
    """The config keys that register hook ``name`` (merged over the tiny config)."""
    entry = dict(type=name, **copy.deepcopy(case.args))
    if case.key == "always":
        return {}
    if case.key == "custom_hooks":
        # a per-policy lr hook replaces the tiny config's fixed lr_config
        no_lr = {"lr_config": None} if name.endswith("LrUpdaterHook") else {}
        return {"custom_hooks": [entry], **no_lr}
    if case.key == "log_config":
        return {"log_config": dict(interval=1, hooks=[entry])}
    return {case.key: dict(_delete_=True, **entry)}


@HOOKS.register_module(force=True)
class StateProbe(Hook):
    """Copies every hook's ``state_dict()`` with priority HIGHEST, at ``before_run`` (as
    the resume left it) and at the first ``before_train_epoch`` (after every hook's
    ``before_run``, where a hook may apply a state it could only keep until then, before
    any training)."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def _take(self, stage: str, runner) -> None:
        if stage not in self.states:
            hooks = runner.hooks.hooks
            self.states[stage] = {h.state_key: copy.deepcopy(h.state_dict()) for h in hooks}

    def before_run(self, runner) -> None:
        self._take("before_run", runner)

    def before_train_epoch(self, runner) -> None:
        self._take("before_train_epoch", runner)


def saved_hook_state(ckpt: Path, key: str) -> dict[str, Any]:
    """A hook's state as the checkpoint directory holds it: JSON in ``state.json`` with
    ``{"__tensor__": name}`` markers for the tensors of ``hook.<key>.safetensors``."""
    from acchooks.checkpoint import load_checkpoint

    loaded = load_checkpoint(ckpt)
    tensors = loaded.tensors.get(f"hook.{key}", {})

    def join(obj: Any) -> Any:
        if isinstance(obj, dict):
            if set(obj) == {"__tensor__"}:
                return tensors[obj["__tensor__"]]
            return {k: join(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [join(v) for v in obj]
        return obj

    return join(loaded.state.get("hooks", {}).get(key, {}))


def differences(got: Any, want: Any, where: str = "state") -> list[str]:
    """Where two states differ, as JSON + tensors (JSON gives a tuple back as a list)."""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return [f"{where}: a {type(got).__name__}, not a tensor"]
        same = got.dtype == want.dtype and torch.equal(got.cpu(), want.cpu())
        return [] if same else [f"{where}: tensors differ"]
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return [f"{where}: {got!r} has not the keys {sorted(want)}"]
        return [d for k in want for d in differences(got[k], want[k], f"{where}[{k!r}]")]
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            return [f"{where}: {got!r} != {want!r}"]
        pairs = enumerate(zip(got, want, strict=True))
        return [d for i, (g, w) in pairs for d in differences(g, w, f"{where}[{i}]")]
    return [] if got == want else [f"{where}: {got!r} != {want!r}"]


def the_hook(runner, name: str, case: Case) -> Hook:
    cls = HOOKS.get(case.built or name)
    found = [h for h in runner.hooks.hooks if type(h) is cls]
    assert len(found) == 1, f"{name}: {len(found)} {cls.__name__} registered in the run"
    return found[0]


def round_trip_params() -> list:
    """Every built-in hook; those with a known bug as strict xfails (they must fail)."""
    params = []
    for name in builtin_hooks():
        bug = CASES[name].known_bug if name in CASES else None
        marks = [pytest.mark.xfail(strict=True, raises=ConfigError, reason=bug)] if bug else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("name", round_trip_params())
def test_state_survives_checkpoint_and_resume(name, tmp_path, external_loggers_offline):
    case = case_of(name)
    overrides = {**BASE, **registration(name, case)}
    first = run_config(tiny_config(tmp_path / "first", **overrides))
    key = the_hook(first, name, case).state_key
    ckpt = tmp_path / "first" / "epoch_2"
    assert (ckpt / "manifest.json").is_file(), sorted(p.name for p in ckpt.parent.iterdir())
    saved = saved_hook_state(ckpt, key)

    probe = dict(type="StateProbe", priority="HIGHEST")
    resumed = run_config(
        tiny_config(
            tmp_path / "resumed",
            **{
                **overrides,
                "runner": dict(max_epochs=3),
                "resume_from": str(ckpt),
                "custom_hooks": [*overrides.get("custom_hooks", []), probe],
            },
        )
    )
    assert resumed.epoch == 3  # the resumed run trained its third epoch
    hook = the_hook(resumed, name, case)
    assert hook.state_key == key
    (prober,) = [h for h in resumed.hooks.hooks if isinstance(h, StateProbe)]
    for stage in ("before_run", "before_train_epoch"):
        assert not differences(prober.states[stage][key], saved, f"{name}.state_dict() {stage}")
    if type(hook).state_dict is Hook.state_dict:
        assert saved == {}, f"{name} is stateless but the checkpoint holds {saved!r}"
    if case.evolves:  # the run changed the state, so the resume has restored something
        fresh = HOOKS.build(dict(type=name, **copy.deepcopy(case.args))).state_dict()
        assert differences(saved, fresh), f"{name}: the saved state is a new hook's: {saved!r}"


def test_per_policy_momentum_hook_in_custom_hooks(tmp_path):
    """HOOKS.build accepts it, so custom_hooks does too: the config check takes its
    policy from the momentum policies (it once took them for lr policies)."""
    hook = dict(type="CosineAnnealingMomentumUpdaterHook", min_momentum_ratio=0.5)
    HOOKS.build(dict(hook))
    run_config(tiny_config(tmp_path, **{**BASE, "custom_hooks": [hook]}))
