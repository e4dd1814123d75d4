"""From a checked config to a ready Runner: Accelerator, seed, logger, model, optimizer,
data loaders, and the default hooks registered from the config keys."""

from __future__ import annotations

import copy
import logging
import math
import os
import os.path as osp
import platform
from typing import Any

import torch
from torch.utils.data import IterableDataset

from ..cli.workdir_lock import agree as agree_on_work_dir_lock
from ..hooks.options import HOOK_TIMING, PROGRESS_CONFIG
from ..hooks.priority import get_priority
from ..recipes.mixup import mixup_options
from ..registry import HOOKS, RUNNERS
from .loaders import build_dataloader
from .loss_scale import fp16_config, pin_scale, scaler_settings
from .options import ACCELERATOR, LOG_CONFIG, loader_options

# the default hooks, built from config keys, in mmcv's order of registration
_LOGGER_DEFAULT_INTERVAL = LOG_CONFIG["interval"].default


def build_accelerator(cfg):
    """One Accelerator from the config's ``accelerator`` dict (and mmcv's ``fp16``).

    A non-default ``accelerate launch --mixed_precision X`` wins over the config."""
    from accelerate import DataLoaderConfiguration
    from accelerate.utils import DistributedDataParallelKwargs, GradScalerKwargs

    # mmcv's optimizer_config.cumulative_iters is Accelerate's accumulation
    cumulative = (cfg.get("optimizer_config") or {}).get("cumulative_iters", 1)
    acc = ACCELERATOR.resolve(cfg.get("accelerator"), gradient_accumulation_steps=cumulative)
    mixed = acc["mixed_precision"]
    handlers = []
    fp16, static = fp16_config(cfg), None  # mmcv's fp16 / Fp16OptimizerHook (loss_scale.py)
    if fp16 is not None:
        mixed = "fp16"
        scaler_kwargs, static = scaler_settings(fp16["loss_scale"])
        handlers.append(GradScalerKwargs(**scaler_kwargs))
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launched != "no":
        mixed = launched
    gas = int(
        os.environ.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", acc["gradient_accumulation_steps"])
    )
    handlers.append(
        DistributedDataParallelKwargs(find_unused_parameters=acc["find_unused_parameters"])
    )
    cpu = acc["cpu"]
    if not cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator():
        # `accelerate launch --multi_gpu` on a machine without GPUs: DDP over gloo on CPU
        # (Accelerate only picks MULTI_CPU when told cpu=True)
        cpu = True
    from .fsdp import create_accelerator  # FSDP on CPU processes too (gloo)

    accelerator = create_accelerator(
        mixed_precision=mixed,
        gradient_accumulation_steps=gas,
        cpu=cpu,
        kwargs_handlers=handlers,
        dataloader_config=DataLoaderConfiguration(
            split_batches=acc["split_batches"],
            even_batches=acc["even_batches"],
            use_seedable_sampler=True,
            data_seed=cfg.get("seed"),
        ),
    )
    if static is not None and getattr(accelerator, "scaler", None) is not None:
        pin_scale(accelerator.scaler, static)
    return accelerator


def _has_accelerator() -> bool:
    from accelerate.utils import (
        is_cuda_available,
        is_hpu_available,
        is_mlu_available,
        is_npu_available,
        is_xpu_available,
    )

    return any(
        f()
        for f in (
            is_cuda_available,
            is_xpu_available,
            is_npu_available,
            is_mlu_available,
            is_hpu_available,
        )
    )


def _env_info(accelerator) -> dict[str, Any]:
    import accelerate
    import timm

    from .. import __version__

    return {
        "acchooks": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
        "timm": timm.__version__,
        "distributed_type": str(accelerator.distributed_type),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "device": str(accelerator.device),
    }


def register_default_hooks(runner, cfg, val_loader) -> None:
    """mmcv's register_training_hooks: lr, momentum, optimizer, checkpoint, timer, eval,
    loggers, then custom_hooks (so equal priorities put custom hooks after defaults)."""
    # policy= or a hook-name type= ('StepLrUpdaterHook'): one hook class per kind
    if cfg.get("lr_config") is not None:
        runner.register_hook(HOOKS.get("LrUpdaterHook").from_config(cfg.lr_config))
    if cfg.get("momentum_config") is not None:
        runner.register_hook(HOOKS.get("MomentumUpdaterHook").from_config(cfg.momentum_config))
    opt_cfg = dict(cfg.get("optimizer_config") or {})
    opt_cfg.setdefault("type", "OptimizerHook")
    runner.register_hook(HOOKS.build(opt_cfg))
    if cfg.get("checkpoint_config") is not None:
        ck = dict(cfg.checkpoint_config)
        ck.setdefault("type", "CheckpointHook")
        runner.register_hook(HOOKS.build(ck))
    runner.register_hook(HOOKS.build({"type": "IterTimerHook"}))
    if cfg.get("evaluation") is not None:
        ev = dict(cfg.evaluation)
        ev.setdefault("type", "EvalHook")
        if cfg.runner.get("type") == "IterBasedRunner":  # as MMClassification's train script
            ev["by_epoch"] = False
        runner.register_hook(HOOKS.build(ev, dataloader=val_loader))
    log_cfg = cfg.get("log_config") or {}
    loggers = []
    for h in log_cfg.get("hooks", []):
        h = dict(h)
        h.setdefault("interval", log_cfg.get("interval", _LOGGER_DEFAULT_INTERVAL))
        loggers.append(runner.register_hook(HOOKS.build(h)))
    text_logger = HOOKS.get("TextLoggerHook")
    progress = progress_hook(cfg, text_logger=any(isinstance(h, text_logger) for h in loggers))
    if progress is not None and runner.is_main_process:  # progress: main process only
        runner.register_hook(progress)
    mixup = mixup_options(cfg)  # `mixup` or MMClassification's model.train_cfg
    if mixup is not None:
        runner.register_hook(HOOKS.build(mixup))
    for h in cfg.get("custom_hooks", []) or []:
        h = copy.deepcopy(dict(h))
        priority = get_priority(h.pop("priority", "NORMAL"))
        runner.register_hook(HOOKS.build(h), priority=priority)


def progress_hook(cfg, text_logger: bool):
    """The ProgressBarHook from ``progress_config`` (default on), or None where it would
    show nothing: disabled, or ``mode='auto'`` off a terminal with a TextLoggerHook."""
    pc = cfg.get("progress_config", {})
    if pc is None:
        return None
    pc = dict(pc)
    if not pc.pop("enable", PROGRESS_CONFIG["enable"].default):
        return None
    pc.setdefault("type", PROGRESS_CONFIG["type"].default)
    hook = HOOKS.build(pc)
    return None if hook.setup(text_logger) == "off" else hook


def configure_hook_timing(runner, cfg) -> None:
    """``hook_timing=dict(enable=True, sample_every='auto', log_every=0)``."""
    ht = HOOK_TIMING.resolve(cfg.get("hook_timing"))
    runner.hooks.configure_timing(enable=ht["enable"], sample_every=ht["sample_every"])
    runner.hook_timing_log_every = ht["log_every"]


def _seed(cfg, accelerator, logger) -> int:
    """The config's seed, or mmcv's init_random_seed: one random seed, the same on every
    process; set everywhere."""
    from accelerate.utils import broadcast, set_seed

    seed = cfg.get("seed")
    if seed is None:
        drawn = torch.randint(0, 2**31 - 1, (1,), dtype=torch.int64, device=accelerator.device)
        seed = int(broadcast(drawn, from_process=0).item())
        logger.info(f"no seed in the config: using seed {seed} (set `seed` to reproduce a run)")
    set_seed(seed, deterministic=cfg.get("deterministic", False))
    return seed


def _prepared(
    cfg, accelerator, seed: int, scaling=None, logger=None
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Model, criterion, optimizer (its lr scaled by ``scaling``) and data loaders,
    prepared by Accelerate; the speed switches around ``prepare`` (:mod:`.speed`)."""
    from ..models import build_model
    from ..optim import build_optimizer
    from ..recipes.mixup import default_loss
    from . import speed

    logger = logger or logging.getLogger("acchooks")
    speed.check_processes(cfg, accelerator)  # sync_bn on CPU processes: before building
    model, criterion = build_model(cfg.model, default_loss=default_loss(cfg))
    model = speed.prepare_model(model, cfg, accelerator, logger)  # sync_bn, channels_last
    optimizer = build_optimizer(model, cfg.optimizer, scaling)
    train = build_dataloader(cfg.data, "train", seed, True, cfg.get("sampler"), accelerator)
    from ..datasets.describe import check_num_classes  # lazily: the config check imports no timm

    check_num_classes(model, train.dataset)  # MMClassification's ClassNumCheckHook
    loaders = {"train": train}
    if cfg.data.get("val") is not None:
        loaders["val"] = build_dataloader(cfg.data, "val", seed, train=False)
    # a streamed (iterable) loader shards itself: prepare would dispatch or re-shard it
    names = [k for k, v in loaders.items() if not isinstance(v.dataset, IterableDataset)]
    prepared = accelerator.prepare(model, optimizer, *(loaders[k] for k in names))
    if criterion is not None:
        criterion = criterion.to(accelerator.device)
    model = speed.compile_model(prepared[0], cfg, logger)  # outermost, around DDP
    loaders.update(zip(names, prepared[2:], strict=True))
    return model, criterion, prepared[1], loaders


def _log_setup(runner, per_process: int) -> None:
    acc, logger, meta = runner.accelerator, runner.logger, runner.meta
    logger.info("Environment: " + ", ".join(f"{k}={v}" for k, v in meta["env_info"].items()))
    if acc.mixed_precision == "fp16" and acc.device.type == "cpu":
        logger.warning(
            "mixed_precision='fp16' on a CPU: Accelerate applies neither autocast "
            "nor loss scaling there, so this run trains in fp32 (bf16 does autocast "
            "on CPUs)"
        )
    n = runner.epoch_length
    logger.info(
        f"global batch {meta['global_batch']} = {per_process} per process x "
        f"{acc.num_processes} processes x {acc.gradient_accumulation_steps} "
        f"accumulation; {n} iterations per epoch, "
        f"{math.ceil(n / acc.gradient_accumulation_steps)} optimizer steps per epoch"
    )


def build_runner(cfg, logger, timestamp: str | None = None):
    """Everything heavy happens here, after the config has been checked: the Accelerator,
    the seed, model, optimizer and data, the runner with its default hooks; then the
    resume (``resume_from``, a path or ``'auto'``) or ``load_from``."""
    accelerator = build_accelerator(cfg)
    agree_on_work_dir_lock(accelerator)  # one run per work dir: every process learns it
    seed = _seed(cfg, accelerator, logger)
    spg = loader_options(cfg.data, "train", train=True)["samples_per_gpu"]
    from ..optim.lr_scaling import global_batch, lr_scaling, per_process_batch, report_lr_scaling

    nproc, gas = accelerator.num_processes, accelerator.gradient_accumulation_steps
    per_process = per_process_batch(spg, nproc, accelerator.split_batches)
    # auto_scale_lr / optimizer.lr_base: the lr for this global batch (acchooks.optim)
    scaling = lr_scaling(cfg, per_process, nproc, gas)
    model, criterion, optimizer, loaders = _prepared(cfg, accelerator, seed, scaling, logger)
    runner_cfg = dict(cfg.runner)
    runner_type = RUNNERS.get(runner_cfg.pop("type"))
    meta = {
        "env_info": _env_info(accelerator),
        "seed": seed,
        "exp_name": osp.basename(cfg.filename or ""),
        "global_batch": global_batch(per_process, nproc, gas),
    }
    runner = runner_type(
        model,
        accelerator=accelerator,
        work_dir=cfg.work_dir,
        optimizer=optimizer,
        criterion=criterion,
        data_loaders=loaders,
        workflow=cfg.get("workflow", [("train", 1)]),
        logger=logger,
        cfg=cfg,
        meta=meta,
        timestamp=timestamp,
        **runner_cfg,
    )
    from ..datasets.describe import describe_run

    runner.description = describe_run(cfg, loaders["train"].dataset)  # in every checkpoint
    configure_hook_timing(runner, cfg)
    register_default_hooks(runner, cfg, loaders.get("val"))
    _log_setup(runner, per_process)
    resumed = runner.checkpointer.resume(cfg.resume_from) if cfg.get("resume_from") else None
    report_lr_scaling(logger, scaling, runner.optimizer, resumed is not None)
    if resumed is None and cfg.get("load_from"):
        _load_from(runner, cfg, loaders["train"].dataset)
    return runner


def _load_from(runner, cfg, train_dataset) -> None:
    """``load_from``'s weights, with a warning if its checkpoint names other classes."""
    runner.load_weights(cfg.load_from)
    if runner.is_main_process:
        from ..datasets.describe import warn_class_mismatch

        warn_class_mismatch(cfg.load_from, train_dataset, "load_from", runner.logger)
