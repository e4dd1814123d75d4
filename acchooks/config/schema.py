"""Checking a whole config before anything heavy happens.

:func:`check_config` walks every key acchooks reads and returns all problems at once,
each line starting with the dotted path (``custom_hooks[1] (EMAHook): unexpected
argument 'intervl'; did you mean 'interval'?``). It builds nothing: no process group,
model, data or file exists yet when it runs.

It keeps no tables of its own below the top level: each option set is declared beside
the code that consumes it (:mod:`acchooks.runner.options`, :mod:`acchooks.hooks.options`,
a registered class's signature or ``check_config``) and walked from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import did_you_mean
from ..registry import DATASETS, HOOKS, LOSSES, MODELS, RUNNERS
from .arguments import check_args, check_registered
from .checks import folder_problem, positive_int
from .optionset import OptionSet, declarations
from .top_level import SECTIONS, TOP_LEVEL, WORKFLOW_PHASE

__all__ = ["TOP_LEVEL", "check_args", "check_config", "check_or_raise", "check_registered"]

_DEFAULT_HOOKS = (
    ("optimizer_config", "OptimizerHook"),
    ("lr_config", "LrUpdaterHook"),
    ("momentum_config", "MomentumUpdaterHook"),
    ("checkpoint_config", "CheckpointHook"),
)

Ok = Callable[[str], bool]


def _declared(key: str) -> OptionSet:
    module, name = SECTIONS[key]
    return getattr(declarations(module), name)


def check_or_raise(
    cfg: Mapping[str, Any], source: str | None = None, ignore: tuple[str, ...] = ()
) -> list[str]:
    """Import ``custom_imports``, check the config, raise ConfigError listing every problem
    (those whose dotted path starts with one of ``ignore`` are dropped); returns the
    warnings. What train.py, ``acchooks.testing`` and the tools do before building."""
    from ..errors import ConfigError
    from .mmcv_compat import translate
    from .options import import_custom_modules

    import_custom_modules(cfg.get("custom_imports"))
    translated, notes = translate(cfg)  # mmcv idioms, rewritten in place
    problems, warnings = check_config(cfg, ignore)
    if translated or problems:
        raise ConfigError(translated + problems, source=source)
    return [*getattr(cfg, "load_warnings", ()), *notes, *warnings]


def check_config(
    cfg: Mapping[str, Any], ignore: tuple[str, ...] = ()
) -> tuple[list[str], list[str]]:
    """All problems of a config, and warnings (unused keys), without building anything;
    problems whose dotted path starts with one of ``ignore`` are dropped.

    Three passes, each run only if the one before found nothing, so the commonest mistake
    is reported fastest:

    1. plain Python, nothing heavy imported: top-level keys and their types, required
       keys, ``accelerator``, ``hook_timing``, ``progress_config``, ``workflow``
       (a misspelled key is reported in about the time Python takes to start);
    2. torch: data and loader settings, runner, hooks, schedules, torch.optim optimizers;
    3. timm and torchvision: model names, losses, datasets, timm optimizers, weights to
       load.

    Each later pass is reported on the next run, once the earlier problems are fixed. An
    ignored problem does not stop the later passes."""

    def kept(problems: list[str]) -> list[str]:
        return [p for p in problems if not p.startswith(ignore)] if ignore else problems

    problems, warnings = _check_static(cfg)
    problems = kept(problems)
    if not problems:
        problems = kept(_check_light(cfg))
    if not problems:
        problems = kept(_check_heavy(cfg))
    return problems, warnings


def _bad_keys(cfg: Mapping[str, Any], problems: list[str]) -> Ok:
    def ok(key: str) -> bool:  # present, of the right type: worth checking inside
        return key in cfg and key not in {p.split(":")[0] for p in problems}

    return ok


# ---------------------------------------------------------------- pass 1: plain Python
def _check_top_level(cfg: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    helpers = sorted(k for k in getattr(cfg, "helpers", ()) if k in cfg and k not in TOP_LEVEL)
    for key, value in cfg.items():
        if key.startswith("_") or key in helpers:
            continue
        if key not in TOP_LEVEL:
            hint = did_you_mean(key, TOP_LEVEL.names())
            if hint:
                problems.append(f"{key}: unknown top-level key{hint}")
            else:
                warnings.append(f"top-level key '{key}' is not used by acchooks (ignored)")
        elif (message := TOP_LEVEL[key].check.problem(value, key)) is not None:
            problems.append(message)
    problems += [
        f"{o.name}: missing (required)" for o in TOP_LEVEL if o.required and o.name not in cfg
    ]
    if helpers:  # names the config's own expressions read (acchooks.config.references)
        warnings.append(
            f"top-level names used only by the config's own expressions, not acchooks keys "
            f"(ignored): {', '.join(helpers)}"
        )
    return problems, warnings


def _check_workflow(cfg: Mapping[str, Any], ok: Ok) -> list[str]:
    problems = []
    for i, phase in enumerate(cfg["workflow"] if ok("workflow") else []):
        path = f"workflow[{i}]"
        if (message := WORKFLOW_PHASE.problem(phase, path)) is not None:
            problems.append(message)
        elif phase[0] == "val" and ok("data") and "val" not in cfg["data"]:
            problems.append(f"{path}: a 'val' phase needs data.val")
    return problems


def _check_progress(pc: Mapping[str, Any]) -> list[str]:
    """``progress_config``: ProgressBarHook's own options, or only ``enable``/``type``
    when it names another hook (whose arguments pass 2 checks)."""
    decl = declarations("acchooks.hooks.options")
    if pc.get("type", "ProgressBarHook") == "ProgressBarHook":
        return decl.PROGRESS_CONFIG.problems(pc)
    own = {k: v for k, v in pc.items() if k in decl.PROGRESS_OWN}
    return decl.PROGRESS_CONFIG.problems(own)


def _check_folders(cfg: Mapping[str, Any], ok: Ok) -> list[str]:
    """The folders a run writes: the work dir and the ``out_dir`` of checkpoints and best
    checkpoints (which go to ``<out_dir>/<basename of work_dir>``)."""
    found = [folder_problem(cfg.get("work_dir"), "work_dir", "choose another (--work-dir DIR)")]
    for key in ("checkpoint_config", "evaluation"):
        if ok(key) and isinstance(cfg[key], Mapping):
            found.append(folder_problem(cfg[key].get("out_dir"), f"{key}.out_dir"))
    return [p for p in found if p is not None]


def _check_static(cfg: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """What needs no heavy import: keys, their types, and the plain-value sections."""
    problems, warnings = _check_top_level(cfg)
    ok = _bad_keys(cfg, problems)
    problems += _check_workflow(cfg, ok)
    for key in ("hook_timing", "accelerator", "fp16", "auto_scale_lr"):  # may be None: off
        if ok(key) and cfg[key] is not None:
            problems += _declared(key).problems(cfg[key], key)
    if ok("compile") and isinstance(cfg["compile"], Mapping):  # or True/False/None
        problems += declarations("acchooks.runner.speed_options").COMPILE.problems(cfg["compile"])
    if ok("progress_config") and cfg["progress_config"] is not None:
        problems += _check_progress(cfg["progress_config"])
    problems += _check_folders(cfg, ok)
    return problems, warnings


# ---------------------------------------------------------------- pass 2: torch
def _check_light(cfg: Mapping[str, Any]) -> list[str]:
    """What needs torch (the hooks, runners and torch.optim), not timm or torchvision."""
    from ..optim.builder import check_optimizer_config, torch_optimizers

    problems: list[str] = []
    ok = _bad_keys(cfg, problems)
    if ok("data"):
        problems += _declared("data").problems(cfg["data"], "data")
    opt = cfg.get("optimizer")
    if ok("optimizer") and opt.get("type") in torch_optimizers():
        problems += check_optimizer_config(opt, "optimizer")
    if ok("runner"):
        problems += _check_runner(cfg["runner"])
    problems += _check_default_hooks(cfg, ok)
    from ..optim.lr_scaling import check_lr_scaling

    problems += check_lr_scaling(cfg) if ok("auto_scale_lr") and ok("optimizer") else []
    problems += _check_log_config(cfg, ok)
    problems += _check_evaluation(cfg, ok)
    for i, h in enumerate(cfg["custom_hooks"] if ok("custom_hooks") else []):
        problems += check_registered(HOOKS, h, f"custom_hooks[{i}]")
    if ok("progress_config") and cfg["progress_config"] is not None:
        pc = {k: v for k, v in cfg["progress_config"].items() if k != "enable"}
        problems += check_registered(HOOKS, pc, "progress_config", default_type="ProgressBarHook")
    return problems


def _check_runner(runner: Mapping[str, Any]) -> list[str]:
    type_ = runner.get("type", "EpochBasedRunner")
    if type_ not in RUNNERS:
        return [f"runner.type: {RUNNERS.unknown_message(type_)}"]
    key = "max_epochs" if type_ == "EpochBasedRunner" else "max_iters"
    problems = [
        f"runner ({type_}): unexpected argument '{k}'{did_you_mean(k, [key])} (accepted: {key})"
        for k in runner
        if k not in ("type", key)
    ]
    message = positive_int.problem(runner.get(key), f"runner.{key} ({type_})")
    return problems + ([message] if message else [])


def _check_default_hooks(cfg: Mapping[str, Any], ok: Ok) -> list[str]:
    """optimizer_config, lr_config, momentum_config and checkpoint_config."""
    problems = []
    for key, hook in _DEFAULT_HOOKS:
        if not ok(key) or cfg[key] is None:
            continue
        if key in ("lr_config", "momentum_config"):  # policy= or a hook-name type=
            problems += HOOKS.get(hook).check_config(cfg[key], path=key)
        else:
            problems += check_registered(HOOKS, cfg[key], key, default_type=hook)
    return problems


def _check_log_config(cfg: Mapping[str, Any], ok: Ok) -> list[str]:
    log_cfg = cfg["log_config"] if ok("log_config") else None
    if log_cfg is None:
        return []
    problems = _declared("log_config").problems(log_cfg, "log_config")
    hooks = log_cfg.get("hooks", ())
    for i, h in enumerate(hooks if isinstance(hooks, (list, tuple)) else ()):
        problems += check_registered(HOOKS, h, f"log_config.hooks[{i}]")
    return problems


def _check_evaluation(cfg: Mapping[str, Any], ok: Ok) -> list[str]:
    from ..evaluation.metrics import check_metrics

    ev = cfg["evaluation"] if ok("evaluation") else None
    if ev is None:
        return []
    problems = check_registered(
        HOOKS, ev, "evaluation", skip=("dataloader",), default_type="EvalHook"
    )
    problems += check_metrics(ev.get("metric", "accuracy"), ev.get("metric_options"), "evaluation")
    if ok("data") and "val" not in cfg["data"]:
        problems.append("evaluation: set, but data.val is missing (EvalHook evaluates on it)")
    return problems


# ---------------------------------------------------------------- pass 3: timm, torchvision
def _check_heavy(cfg: Mapping[str, Any]) -> list[str]:
    from ..optim.builder import check_optimizer_config, torch_optimizers

    problems: list[str] = []
    ok = _bad_keys(cfg, problems)
    if ok("model"):
        problems += _check_model(cfg["model"])
    if ok("load_from") and cfg["load_from"] is not None:
        from ..checkpoint.weights import check_load_spec

        problems += check_load_spec(cfg["load_from"], "load_from")
    if ok("data"):
        problems += [
            p
            for k in ("train", "val", "test")
            if cfg["data"].get(k) is not None
            for p in check_registered(DATASETS, cfg["data"][k], f"data.{k}")
        ]
    if ok("optimizer") and cfg["optimizer"].get("type") not in torch_optimizers():
        problems += check_optimizer_config(cfg["optimizer"], "optimizer")  # (else: pass 2)
    from ..datasets.samplers import check_sampler
    from ..recipes.mixup import check_mixup
    from ..runner.speed import check_speed  # compile backend and mode

    problems += check_speed(cfg) if ok("compile") else []
    return problems + (check_mixup(cfg) if ok("model") else []) + check_sampler(cfg)


def _check_model(model_cfg: Mapping[str, Any]) -> list[str]:
    from ..checkpoint.weights import check_load_spec
    from ..models.timm_classifier import check_timm_model_config

    problems = []
    model = dict(model_cfg)
    model.pop("train_cfg", None)  # batch mixing: acchooks.recipes.mixup.check_mixup
    if model.get("init_cfg") is not None:
        problems += check_load_spec(model.pop("init_cfg"), "model.init_cfg", pretrained=True)
    if model.get("loss") is not None:
        problems += check_registered(LOSSES, model.pop("loss"), "model.loss")
    else:
        model.pop("loss", None)
    if model.get("type") == "TimmClassifier":
        problems += check_timm_model_config(model, "model")
    else:
        problems += check_registered(MODELS, model, "model", skip=("init_cfg",))
    return problems
