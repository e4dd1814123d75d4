"""LrUpdaterHook and MomentumUpdaterHook: set a hyper-parameter of every param group
before each train iteration from a pure schedule policy plus optional warmup.

The value is recomputed from the counters every iteration (no hidden state), so a
resumed run gets exactly the values of an uninterrupted one. ``progress`` is the epoch
when ``by_epoch=True`` and the ``unit`` count otherwise, and warmup counts ``unit``s:
``unit='step'`` (the default) counts optimizer steps (accumulation micro-steps and skipped
fp16 steps do not count); ``unit='iter'`` counts train iterations as mmcv does, and is the
default the config check sets under mmcv's ``optimizer_config.cumulative_iters`` (so
``warmup_iters=20`` lasts 20 iterations there, as in mmcv).

A policy is chosen as in mmcv: ``lr_config=dict(policy='CosineAnnealing', ...)``, or by
its hook name, ``dict(type='CosineAnnealingLrUpdaterHook', ...)``; every name is also
registered in HOOKS (``StepLrUpdaterHook``, ``CyclicMomentumUpdaterHook``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config.checks import boolean, number_in, one_of, optional, positive_int, problems_of
from ..errors import ConfigError
from ..registry import HOOKS
from ..schedules import check_policy_args, policy_key, registry_for
from .hook import Hook
from .priority import Priority

if TYPE_CHECKING:
    from ..runner.runner import Runner


WARMUPS = ("constant", "linear", "exp")
UNITS = ("step", "iter")
_UNIT = one_of(UNITS).noted("'step': optimizer steps; 'iter': train iterations, as mmcv")
_WARMUP = optional(one_of(WARMUPS))
_OWN = (
    "policy",
    "by_epoch",
    "warmup",
    "warmup_iters",
    "warmup_ratio",
    "warmup_by_epoch",
    "unit",
)


class _ParamSchedulerHook(Hook):
    _config_key = ""  # 'lr_config' / 'momentum_config'
    _value_key = ""  # the group key the base value is remembered under, as in mmcv
    default_warmup_ratio = 0.1
    policy_name: str | None = None  # fixed by the per-policy subclasses
    _last_key: tuple | None = None  # (schedule point, optimizer) last applied

    def __init__(
        self,
        policy: str | None = None,
        by_epoch: bool | None = None,
        warmup: str | None = None,
        warmup_iters: int = 0,
        warmup_ratio: float | None = None,
        warmup_by_epoch: bool = False,
        unit: str = "step",
        **policy_args: Any,
    ):
        args = {
            "policy": policy,
            "by_epoch": by_epoch,
            "warmup": warmup,
            "warmup_iters": warmup_iters,
            "warmup_ratio": warmup_ratio,
            "warmup_by_epoch": warmup_by_epoch,
            "unit": unit,
            **policy_args,
        }
        problems = self.check_config(
            {k: v for k, v in args.items() if v is not None}, path=self._config_key
        )
        if problems:
            raise ConfigError(problems)
        self.policy = policy_key(policy or self.policy_name or "Fixed")
        self.fn = registry_for(self._config_key).get(self.policy)
        self.spec = self.fn.spec
        self.policy_args = policy_args
        self.by_epoch = (not self.spec.iter_only) if by_epoch is None else by_epoch
        self.warmup = warmup
        self.warmup_iters = warmup_iters
        self.warmup_ratio = self.default_warmup_ratio if warmup_ratio is None else warmup_ratio
        self.warmup_by_epoch = warmup_by_epoch
        self.unit = unit
        self.base_values: list[float] = []
        self.group_args: list[dict[str, Any]] = []

    # ------------------------------------------------------------ config
    @classmethod
    def resolve(cls, cfg: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Constructor arguments for ``cfg`` (``policy=`` or a hook-name ``type=``)."""
        args, path = dict(cfg), cls._config_key
        type_ = args.pop("type", None)
        base = cls.__mro__[0].__name__ if cls.policy_name is None else cls.__mro__[1].__name__
        if type_ is not None and type_ != base:
            named = type_[: -len(base)] if type_.endswith(base) else None
            if not named or named not in registry_for(path):
                choices = [f"{k}{base}" for k in registry_for(path).keys()]
                from ..errors import did_you_mean

                return args, [
                    f"{path}.type: unknown {base} '{type_}'{did_you_mean(type_, choices)} "
                    f"(use policy=... or one of: {', '.join(choices)})"
                ]
            if "policy" in args and policy_key(str(args["policy"])) != named:
                return args, [
                    f"{path}: type '{type_}' and policy '{args['policy']}' disagree; "
                    f"give one of them"
                ]
            args["policy"] = named
        elif "policy" not in args and cls.policy_name is None:
            return args, [f"{path}.policy: missing (e.g. policy='step')"]
        return args, []

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], path: str | None = None) -> list[str]:
        """Every problem of a ``lr_config`` / ``momentum_config`` dict, nothing built."""
        path = path or cls._config_key
        args, problems = cls.resolve(cfg)
        if problems:
            return problems
        policy = args.get("policy", cls.policy_name)
        policy_args = {k: v for k, v in args.items() if k not in _OWN}
        problems = check_policy_args(policy, policy_args, path, cls._config_key)
        if problems:
            return problems
        spec = registry_for(cls._config_key).get(policy_key(policy)).spec
        by_epoch = args.get("by_epoch")
        problems += problems_of(
            (_UNIT, args.get("unit", "step"), f"{path}.unit"),
            (optional(boolean), by_epoch, f"{path}.by_epoch"),
        )
        if spec.iter_only and by_epoch:
            problems.append(
                f"{path}.by_epoch: policy '{policy}' only supports by_epoch=False "
                f"(as in mmcv); remove by_epoch"
            )
        if args.get("warmup") is not None:
            problems += problems_of(
                (_WARMUP, args["warmup"], f"{path}.warmup"),
                (
                    positive_int.noted("when warmup is set"),
                    args.get("warmup_iters", 0),
                    f"{path}.warmup_iters",
                ),
                (
                    number_in(0, 1, low_open=True),
                    args.get("warmup_ratio", cls.default_warmup_ratio),
                    f"{path}.warmup_ratio",
                ),
            )
        return problems

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> _ParamSchedulerHook:
        """The hook for a ``lr_config`` / ``momentum_config`` dict."""
        args, problems = cls.resolve(cfg)
        if problems:
            raise ConfigError(problems)
        name = policy_key(str(args.get("policy") or cls.policy_name or "Fixed"))
        registry = registry_for(cls._config_key)
        if cls.policy_name is None and name in registry and registry.get(name).spec.metric_driven:
            return HOOKS.get(f"{name}{cls.__name__}")(**args)  # its own hook keeps the state
        return cls(**args)

    # ------------------------------------------------------------ subclasses
    def _get(self, group: dict) -> float:
        raise NotImplementedError

    def _set(self, group: dict, value: float) -> None:
        raise NotImplementedError

    def _warmup(self, regular: float, cur: int, total: int) -> float:
        raise NotImplementedError

    def _group_args(self, args: dict[str, Any], group: dict) -> dict[str, Any]:
        """One param group's policy arguments (the LR hook scales absolute lrs)."""
        return args

    # ------------------------------------------------------------ stages
    def before_run(self, runner: Runner) -> None:
        groups = runner.optimizer.param_groups
        for g in groups:  # remember the configured values once, like mmcv's initial_lr
            g.setdefault(self._value_key, self._get(g))
        self.base_values = [g[self._value_key] for g in groups]
        path, problems = self._config_key, []
        self.group_args = [dict(self.policy_args) for _ in groups]
        for key in self.spec.per_group:
            value = self.policy_args.get(key)
            if isinstance(value, (list, tuple)):
                if len(value) != len(groups):
                    problems.append(
                        f"{path}.{key}: expected {len(groups)} values (one per param "
                        f"group), got {len(value)}"
                    )
                    continue
                for args, v in zip(self.group_args, value, strict=True):
                    args[key] = v
        pairs = zip(self.group_args, groups, strict=True)
        self.group_args = [self._group_args(a, g) for a, g in pairs]
        if self.by_epoch and runner.max_epochs is None and self.spec.needs_max:
            problems.append(
                f"{path}: policy '{self.policy}' with by_epoch=True needs an "
                f"EpochBasedRunner (max_epochs); set by_epoch=False"
            )
        elif self.spec.run_check is not None:
            total = runner.max_iters if self.unit == "iter" else runner.max_steps
            limit = runner.max_epochs if self.by_epoch else total
            problems += [
                f"{path} ({self.policy}): {p}" for p in self.spec.run_check(self.policy_args, limit)
            ]
        if problems:
            raise ConfigError(problems)

    def values_at(
        self, step: int, epoch: int, steps_per_epoch: int, max_steps: int, max_epochs: int | None
    ) -> list[float]:
        """The value for every param group at a point of training (pure)."""
        if self.by_epoch:
            progress, max_progress = epoch, max_epochs
        else:
            progress, max_progress = step, max_steps
        regular = self._regular(progress, max_progress)
        warmup_iters = (
            self.warmup_iters * steps_per_epoch if self.warmup_by_epoch else self.warmup_iters
        )
        if self.warmup is None or step >= warmup_iters:
            return regular
        return [self._warmup(r, step, warmup_iters) for r in regular]

    def _regular(self, progress: int, max_progress: int | None) -> list[float]:
        """The policy's value for every param group (before warmup)."""
        return [
            self.fn(b, progress, max_progress, **a)
            for b, a in zip(self.base_values, self.group_args, strict=True)
        ]

    def before_train_iter(self, runner: Runner) -> None:
        # the values depend on (step, epoch) only; skip the recomputation when neither the
        # point of the schedule that matters nor the optimizer's groups changed
        by_iter = self.unit == "iter"
        count = runner.iter if by_iter else runner.step
        key = (
            runner.epoch if self.by_epoch and self.warmup is None else (count, runner.epoch),
            id(runner.optimizer),
        )
        if key == self._last_key:
            return
        if by_iter:
            per_epoch, total = runner.epoch_length, runner.max_iters
        else:
            per_epoch, total = runner.steps_per_epoch, runner.max_steps
        values = self.values_at(count, runner.epoch, per_epoch, total, runner.max_epochs)
        for g, v in zip(runner.optimizer.param_groups, values, strict=True):
            self._set(g, v)
        self._last_key = key


@HOOKS.register_module()
class LrUpdaterHook(_ParamSchedulerHook):
    """``lr_config=dict(policy='step', step=[30, 60], gamma=0.1, warmup='linear', ...)``."""

    priority = Priority.VERY_HIGH
    _config_key = "lr_config"
    _value_key = "initial_lr"

    def _get(self, group: dict) -> float:
        return group["lr"]

    def _set(self, group: dict, value: float) -> None:
        group["lr"] = value

    def _group_args(self, args: dict[str, Any], group: dict) -> dict[str, Any]:
        # LR scaling (auto_scale_lr / optimizer.lr_base) scales min_lr / max_lr alike
        from ..optim.lr_scaling import scale_schedule_args

        return scale_schedule_args(args, group)

    def _warmup(self, regular: float, cur: int, total: int) -> float:
        if self.warmup == "constant":
            return regular * self.warmup_ratio
        if self.warmup == "linear":
            return regular * (1 - (1 - cur / total) * (1 - self.warmup_ratio))
        return regular * self.warmup_ratio ** (1 - cur / total)


@HOOKS.register_module()
class MomentumUpdaterHook(_ParamSchedulerHook):
    """``momentum_config=dict(policy='CosineAnnealing', min_momentum_ratio=..)``: SGD
    ``momentum`` or Adam-family ``betas[0]``. Warmup divides, as in mmcv (default
    ``warmup_ratio=0.9``)."""

    priority = Priority.HIGH
    _config_key = "momentum_config"
    _value_key = "initial_momentum"
    default_warmup_ratio = 0.9

    def before_run(self, runner: Runner) -> None:
        g0 = runner.optimizer.param_groups[0]
        if "momentum" not in g0 and "betas" not in g0:
            raise ConfigError(
                f"momentum_config: optimizer {type(runner.optimizer).__name__} has "
                f"neither 'momentum' nor 'betas'; remove momentum_config"
            )
        super().before_run(runner)

    def _get(self, group: dict) -> float:
        return group["betas"][0] if "betas" in group else group["momentum"]

    def _set(self, group: dict, value: float) -> None:
        if "betas" in group:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _warmup(self, regular: float, cur: int, total: int) -> float:
        if self.warmup == "constant":
            return regular / self.warmup_ratio
        if self.warmup == "linear":
            return regular / (1 - (1 - cur / total) * (1 - self.warmup_ratio))
        return regular / self.warmup_ratio ** (1 - cur / total)


def _register_named(base: type[_ParamSchedulerHook]) -> None:
    """mmcv's per-policy hook names (``StepLrUpdaterHook``), each the base hook with its
    policy fixed."""
    for name in registry_for(base._config_key).keys():
        if registry_for(base._config_key).get(name).spec.metric_driven:
            continue  # a hook of its own (hooks/plateau.py)
        HOOKS.register_module(
            module=type(
                f"{name}{base.__name__}",
                (base,),
                {
                    "policy_name": name,
                    "__module__": __name__,
                    "__doc__": f"``{base._config_key}=dict(policy='{name}', ...)`` by its mmcv name.",
                },
            )
        )


_register_named(LrUpdaterHook)
_register_named(MomentumUpdaterHook)
