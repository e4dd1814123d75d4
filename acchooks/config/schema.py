"""Checking a whole config before anything heavy happens.

:func:`check_config` walks every key acchooks reads and returns all problems at once,
each line starting with the dotted path (``custom_hooks[1] (EMAHook): unexpected
argument 'intervl'; did you mean 'interval'?``). It builds nothing: no process group,
model, data or file exists yet when it runs.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import did_you_mean
from ..registry import DATASETS, HOOKS, LOSSES, MODELS, RUNNERS, accepted_arguments

# top-level keys acchooks reads, and the type each must have (None = any)
KNOWN_KEYS: dict[str, tuple | None] = {
    "model": (dict,),
    "data": (dict,),
    "optimizer": (dict,),
    "optimizer_config": (dict, type(None)),
    "lr_config": (dict, type(None)),
    "momentum_config": (dict, type(None)),
    "runner": (dict,),
    "checkpoint_config": (dict, type(None)),
    "log_config": (dict, type(None)),
    "evaluation": (dict, type(None)),
    "custom_hooks": (list, tuple),
    "custom_imports": (dict, type(None)),
    "workflow": (list, tuple),
    "work_dir": (str, type(None)),
    "load_from": (str, dict, type(None)),
    "resume_from": (str, type(None)),
    "seed": (int, type(None)),
    "deterministic": (bool,),
    "accelerator": (dict,),
    "fp16": (dict, type(None)),
    "progress_config": (dict, type(None)),
    "hook_timing": (dict,),
    # accepted from MMCV/MMClassification configs; Accelerate decides these at launch
    "dist_params": (dict,),
    "log_level": (str,),
    "gpu_ids": None,
    "opencv_num_threads": None,
    "mp_start_method": None,
    "device": None,
}
IGNORED_MMCV_KEYS = ("dist_params", "gpu_ids", "opencv_num_threads", "mp_start_method", "device")
ACCELERATOR_KEYS = {
    "mixed_precision": (str,),
    "gradient_accumulation_steps": (int,),
    "cpu": (bool,),
    "find_unused_parameters": (bool,),
    "split_batches": (bool,),
    "even_batches": (bool,),
}
HOOK_TIMING_KEYS = {"enable": (bool,), "sample_every": (int, str), "log_every": (int,)}
DATALOADER_KEYS = {
    "samples_per_gpu": (int,),
    "workers_per_gpu": (int,),
    "shuffle": (bool,),
    "drop_last": (bool,),
    "pin_memory": (bool,),
    "persistent_workers": (bool,),
}


def _type_ok(value: Any, ann: Any) -> bool:
    """Loose runtime check of a value against a simple annotation; unknown -> accepted."""
    if ann is inspect.Parameter.empty or ann is Any:
        return True
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(ann))
    if ann is type(None) or ann is None:
        return value is None
    target = origin or ann
    if not isinstance(target, type):
        return True
    if target is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if target is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if target in (list, tuple) or (
        isinstance(target, type) and issubclass(target, typing.Sequence) and target is not str
    ):
        return isinstance(value, (list, tuple))
    if issubclass(target, Mapping):
        return isinstance(value, Mapping)
    if target in (bool, str):
        return isinstance(value, target)
    return True


def _hints(obj: Any) -> dict[str, Any]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations are simply not checked
        return {}


def check_args(
    obj: Any, args: Mapping[str, Any], path: str, name: str, skip: tuple[str, ...] = ()
) -> list[str]:
    """Unexpected, missing or wrongly-typed arguments for building ``obj(**args)``."""
    accepted, var_kw = accepted_arguments(obj)
    accepted -= set(skip)
    problems = []
    if not var_kw:
        for k in args:
            if k not in accepted:
                problems.append(
                    f"{path} ({name}): unexpected argument '{k}'"
                    f"{did_you_mean(k, accepted)} (accepted: {', '.join(sorted(accepted)) or 'none'})"
                )
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        params = []
    for p in params[1 if inspect.isclass(obj) else 0 :]:
        if (
            p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in args
            and p.name not in skip
        ):
            problems.append(f"{path} ({name}): missing required argument '{p.name}'")
    hints = _hints(obj)
    for k, v in args.items():
        if k in hints and not _type_ok(v, hints[k]):
            problems.append(
                f"{path}.{k} ({name}): expected {_ann_name(hints[k])}, got {type(v).__name__} {v!r}"
            )
    return problems


def _ann_name(ann: Any) -> str:
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def _check_typed(d: Mapping, allowed: dict[str, tuple], path: str) -> list[str]:
    problems = []
    for k, v in d.items():
        if k not in allowed:
            problems.append(
                f"{path}: unexpected key '{k}'{did_you_mean(k, allowed)} "
                f"(accepted: {', '.join(allowed)})"
            )
        elif not isinstance(v, allowed[k]) or (isinstance(v, bool) and bool not in allowed[k]):
            problems.append(
                f"{path}.{k}: expected {' or '.join(t.__name__ for t in allowed[k])}, "
                f"got {type(v).__name__} {v!r}"
            )
    return problems


def check_registered(
    registry, cfg: Any, path: str, skip: tuple[str, ...] = (), default_type: str | None = None
) -> list[str]:
    """A ``dict(type=..., **args)`` entry: known type, acceptable arguments."""
    if not isinstance(cfg, Mapping):
        return [f"{path}: expected a dict with a 'type' key, got {type(cfg).__name__} {cfg!r}"]
    type_ = cfg.get("type", default_type)
    if type_ is None:
        return [f"{path}: missing 'type' (one of: {', '.join(registry.keys())})"]
    if type_ not in registry:
        return [f"{path}.type: {registry.unknown_message(type_)}"]
    obj = registry.get(type_)
    args = {k: v for k, v in cfg.items() if k not in ("type", "priority")}
    problems = []
    custom = getattr(obj, "check_config", None)
    if callable(custom):
        problems += custom(args, path=path)
    else:
        problems += check_args(obj, args, path, type_, skip)
    if "priority" in cfg:
        from ..hooks.priority import get_priority

        try:
            get_priority(cfg["priority"])
        except (ValueError, TypeError) as e:
            problems.append(f"{path}.priority: {e}")
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
    v = runner.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        problems.append(f"runner.{key} ({type_}): expected a positive int, got {v!r}")
    return problems


def check_or_raise(
    cfg: Mapping[str, Any], source: str | None = None, ignore: tuple[str, ...] = ()
) -> list[str]:
    """Import ``custom_imports``, check the config, raise ConfigError listing every problem
    (those whose dotted path starts with one of ``ignore`` are dropped); returns the
    warnings. What train.py, ``acchooks.testing`` and the tools do before building."""
    from ..errors import ConfigError
    from .options import import_custom_modules

    import_custom_modules(cfg.get("custom_imports"))
    problems, warnings = check_config(cfg, ignore)
    if problems:
        raise ConfigError(problems, source=source)
    return warnings


def check_config(
    cfg: Mapping[str, Any], ignore: tuple[str, ...] = ()
) -> tuple[list[str], list[str]]:
    """All problems of a config, and warnings (unused keys), without building anything;
    problems whose dotted path starts with one of ``ignore`` are dropped.

    Three passes, each run only if the one before found nothing, so the commonest mistake
    is reported fastest:

    1. plain Python, nothing imported: top-level keys and their types, required keys,
       ``accelerator``, ``hook_timing``, ``progress_config.enable``, ``workflow``
       (a misspelled key is reported in about the time Python takes to start);
    2. torch: runner, hooks, schedules, torch.optim optimizers, loader settings;
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


def _bad_keys(cfg: Mapping[str, Any], problems: list[str]):
    bad = {p.split(":")[0] for p in problems}

    def ok(key: str) -> bool:  # present, of the right type: worth checking inside
        return key in cfg and key not in bad

    return ok


def _check_heavy(cfg: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    ok = _bad_keys(cfg, problems)
    if ok("model"):
        problems += _check_model(cfg["model"])
    if ok("load_from") and cfg["load_from"] is not None:
        from ..checkpoint.weights import check_load_spec

        problems += check_load_spec(cfg["load_from"], "load_from")
    if ok("data"):
        problems += _check_datasets(cfg["data"])
    if ok("optimizer"):
        from ..optim.builder import check_optimizer_config, torch_optimizers

        if not (
            isinstance(cfg["optimizer"], Mapping)
            and cfg["optimizer"].get("type") in torch_optimizers()
        ):  # else checked already
            problems += check_optimizer_config(cfg["optimizer"], "optimizer")
    return problems


def _light_optimizer_problems(opt: Any) -> list[str]:
    """The optimizer, when it is a torch.optim class (no timm needed)."""
    from ..optim.builder import check_optimizer_config, torch_optimizers

    if isinstance(opt, Mapping) and opt.get("type") in torch_optimizers():
        return check_optimizer_config(opt, "optimizer")
    return []


def _check_static(cfg: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """What needs no import: keys, their types, and the plain-value sections."""
    problems: list[str] = []
    warnings: list[str] = []
    for key in cfg:
        if key.startswith("_"):
            continue
        if key not in KNOWN_KEYS:
            hint = did_you_mean(key, KNOWN_KEYS)
            if hint:
                problems.append(f"{key}: unknown top-level key{hint}")
            else:
                warnings.append(f"top-level key '{key}' is not used by acchooks (ignored)")
        elif KNOWN_KEYS[key] is not None and not isinstance(cfg[key], KNOWN_KEYS[key]):
            problems.append(
                f"{key}: expected {' or '.join(t.__name__ for t in KNOWN_KEYS[key])}, "
                f"got {type(cfg[key]).__name__} {cfg[key]!r}"
            )
    for key in ("model", "data", "optimizer", "runner"):
        if key not in cfg:
            problems.append(f"{key}: missing (required)")
    ok = _bad_keys(cfg, problems)
    for i, w in enumerate(cfg.get("workflow", [("train", 1)]) if ok("workflow") else []):
        if (
            not isinstance(w, (list, tuple))
            or len(w) != 2
            or w[0] not in ("train", "val")
            or not isinstance(w[1], int)
            or w[1] < 1
        ):
            problems.append(
                f"workflow[{i}]: expected ('train', N) or ('val', N) with N >= 1, got {w!r}"
            )
        elif (
            w[0] == "val"
            and ok("data")
            and isinstance(cfg["data"], Mapping)
            and "val" not in cfg["data"]
        ):
            problems.append(f"workflow[{i}]: a 'val' phase needs data.val")
    if ok("hook_timing"):
        problems += _check_typed(cfg["hook_timing"], HOOK_TIMING_KEYS, "hook_timing")
        for k, low in (("sample_every", 1), ("log_every", 0)):
            v = cfg["hook_timing"].get(k)
            if isinstance(v, int) and not isinstance(v, bool) and v < low:
                problems.append(f"hook_timing.{k}: expected an int >= {low}, got {v!r}")
        if (
            isinstance(cfg["hook_timing"].get("sample_every"), str)
            and cfg["hook_timing"]["sample_every"] != "auto"
        ):
            problems.append(
                f"hook_timing.sample_every: expected 'auto' or an int >= 1, got "
                f"{cfg['hook_timing']['sample_every']!r}"
            )
    if ok("progress_config") and cfg["progress_config"] is not None:
        pc = cfg["progress_config"]
        if not isinstance(pc.get("enable", True), bool):
            problems.append(f"progress_config.enable: expected bool, got {pc['enable']!r}")
        if pc.get("mode", "auto") not in ("auto", "bar", "lines"):
            problems.append(
                f"progress_config.mode: expected 'auto', 'bar' or 'lines', got {pc['mode']!r}"
            )
    if ok("accelerator"):
        problems += _check_typed(cfg["accelerator"], ACCELERATOR_KEYS, "accelerator")
        mp = cfg["accelerator"].get("mixed_precision")
        if mp is not None and mp not in ("no", "fp16", "bf16", "fp8"):
            problems.append(
                f"accelerator.mixed_precision: '{mp}' is not one of no, fp16, bf16, fp8"
            )
    return problems, warnings


def _check_light(cfg: Mapping[str, Any]) -> list[str]:
    """What needs torch (the hooks, runners and torch.optim), not timm or torchvision."""
    problems: list[str] = []
    ok = _bad_keys(cfg, problems)
    if ok("data"):
        problems += _check_data(cfg["data"])
    if ok("optimizer"):
        problems += _light_optimizer_problems(cfg["optimizer"])
    if ok("runner"):
        problems += _check_runner(cfg["runner"])
    problems += _check_hooks(cfg, ok)
    if ok("progress_config") and cfg["progress_config"] is not None:
        pc = {k: v for k, v in cfg["progress_config"].items() if k != "enable"}
        problems += check_registered(HOOKS, pc, "progress_config", default_type="ProgressBarHook")
    return problems


def _check_model(model_cfg: Mapping) -> list[str]:
    from ..checkpoint.weights import check_load_spec
    from ..models.timm_classifier import check_timm_model_config

    problems = []
    model = dict(model_cfg)
    if model.get("init_cfg") is not None:
        problems += check_load_spec(model.pop("init_cfg"), "model.init_cfg", pretrained=True)
    if "loss" in model and model["loss"] is not None:
        problems += check_registered(LOSSES, model.pop("loss"), "model.loss")
    else:
        model.pop("loss", None)
    if model.get("type") == "TimmClassifier":
        problems += check_timm_model_config(model, "model")
    else:
        problems += check_registered(MODELS, model, "model", skip=("init_cfg",))
    return problems


def _check_datasets(data: Mapping) -> list[str]:
    return [
        p
        for k in ("train", "val", "test")
        if data.get(k) is not None
        for p in check_registered(DATASETS, data[k], f"data.{k}")
    ]


def _check_data(data: Mapping) -> list[str]:
    """The data dict's own keys (the datasets are checked by :func:`_check_datasets`)."""
    problems = []
    loader_keys = {"samples_per_gpu": (int,), "workers_per_gpu": (int,)}
    for k in data:
        if k in ("train", "val", "test"):
            pass
        elif k in ("train_dataloader", "val_dataloader", "test_dataloader"):
            problems += _check_typed(data[k], DATALOADER_KEYS, f"data.{k}")
        elif k in loader_keys:
            problems += _check_typed({k: data[k]}, loader_keys, "data")
        else:
            allowed = [
                "train",
                "val",
                "test",
                "train_dataloader",
                "val_dataloader",
                "test_dataloader",
                *loader_keys,
            ]
            problems.append(
                f"data: unexpected key '{k}'{did_you_mean(k, allowed)} "
                f"(accepted: {', '.join(allowed)})"
            )
    if "train" not in data:
        problems.append("data.train: missing (required for training)")
    return problems


def _check_hooks(cfg: Mapping, ok) -> list[str]:
    from ..evaluation.metrics import check_metrics

    problems = []
    if ok("optimizer_config") and cfg["optimizer_config"] is not None:
        problems += check_registered(
            HOOKS, cfg["optimizer_config"], "optimizer_config", default_type="OptimizerHook"
        )
    for key, hook in (("lr_config", "LrUpdaterHook"), ("momentum_config", "MomentumUpdaterHook")):
        sub = cfg.get(key) if ok(key) else None
        if sub is not None:  # policy= or a hook-name type=, checked by the hook class
            problems += HOOKS.get(hook).check_config(sub, path=key)
    if ok("checkpoint_config") and cfg["checkpoint_config"] is not None:
        problems += check_registered(
            HOOKS, cfg["checkpoint_config"], "checkpoint_config", default_type="CheckpointHook"
        )
    log_cfg = cfg.get("log_config") if ok("log_config") else None
    if log_cfg is not None:
        for k in log_cfg:
            if k not in ("interval", "hooks"):
                problems.append(
                    f"log_config: unexpected key '{k}'"
                    f"{did_you_mean(k, ['interval', 'hooks'])} (accepted: interval, hooks)"
                )
        for i, h in enumerate(log_cfg.get("hooks", [])):
            problems += check_registered(HOOKS, h, f"log_config.hooks[{i}]")
    ev = cfg.get("evaluation") if ok("evaluation") else None
    if ev is not None:
        problems += check_registered(
            HOOKS, ev, "evaluation", skip=("dataloader",), default_type="EvalHook"
        )
        problems += check_metrics(
            ev.get("metric", "accuracy"), ev.get("metric_options"), "evaluation"
        )
        if ok("data") and "val" not in cfg["data"]:
            problems.append("evaluation: set, but data.val is missing (EvalHook evaluates on it)")
    for i, h in enumerate(cfg.get("custom_hooks", []) if ok("custom_hooks") else []):
        problems += check_registered(HOOKS, h, f"custom_hooks[{i}]")
    return problems
