"""mmcv 1.x idioms that acchooks translates before the config check.

:func:`translate` rewrites a loaded config in place, returning (problems, warnings); each
warning is one line saying what a key became or why it is moot under Accelerate:

* ``total_epochs = N`` (MMClassification before v0.15): ``runner =
  dict(type='EpochBasedRunner', max_epochs=N)``, with MMClassification's warning;
* ``optimizer_config=dict(type='Fp16OptimizerHook', loss_scale=.., grad_clip=..)`` (and
  ``GradientCumulativeFp16OptimizerHook``): ``fp16=dict(loss_scale=..)`` plus the plain
  (or cumulative) OptimizerHook; ``coalesce``, ``bucket_size_mb`` and ``distributed``
  are DDP's business under Accelerate;
* ``checkpoint_config`` ``create_symlink`` (acchooks always keeps a ``latest`` pointer),
  ``filename_tmpl`` (checkpoints are directories ``epoch_N`` / ``iter_N``), ``sync_buffer``
  (a SyncBuffersHook that runs before the checkpoint is written);
* ``evaluation`` ``gpu_collect`` / ``tmpdir`` (Accelerate gathers the predictions) and
  ``broadcast_bn_buffer`` (DDP broadcasts rank 0's buffers at every forward pass);
* ``optimizer_config.cumulative_iters``: ``lr_config`` / ``momentum_config`` count
  iterations (``unit='iter'``), as mmcv's schedules do, unless they set ``unit``;
* an IPU config (``runner.ipu_model_cfg`` / ``options_cfg``) is refused with the reason.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

_FP16_HOOKS = {
    "Fp16OptimizerHook": "OptimizerHook",
    "GradientCumulativeFp16OptimizerHook": "GradientCumulativeOptimizerHook",
}
_DDP_MOOT = ("coalesce", "bucket_size_mb", "distributed")
_CHECKPOINT_NOTES = {
    "create_symlink": "acchooks always keeps a 'latest' pointer to the newest checkpoint",
    "filename_tmpl": "acchooks names checkpoint directories epoch_N / iter_N "
    "(resume and retention rely on it); the template is not applied",
}
_EVAL_NOTES = {
    "gpu_collect": "Accelerate gathers the predictions (gather_for_metrics)",
    "tmpdir": "Accelerate gathers the predictions (gather_for_metrics)",
    "broadcast_bn_buffer": "DDP broadcasts rank 0's buffers at every forward pass",
}
_IPU_KEYS = ("ipu_model_cfg", "options_cfg", "modules_to_record", "fp16_cfg")


def _total_epochs(cfg: MutableMapping, problems: list[str], notes: list[str]) -> None:
    total = cfg.pop("total_epochs")
    runner = cfg.get("runner")
    if runner is None:
        cfg["runner"] = {"type": "EpochBasedRunner", "max_epochs": total}
        notes.append(
            f"total_epochs={total}: config is now expected to have a `runner` section, "
            f"please set `runner` in your config (using runner=dict(type='EpochBasedRunner', "
            f"max_epochs={total}))"
        )
    elif isinstance(runner, MutableMapping) and runner.get("max_epochs") != total:
        problems.append(
            f"total_epochs: {total} disagrees with runner.max_epochs={runner.get('max_epochs')!r} "
            f"(mmcv requires them equal); remove total_epochs"
        )


def _fp16_hook(cfg: MutableMapping, notes: list[str]) -> None:
    opt = dict(cfg["optimizer_config"])
    hook = opt.pop("type")
    scale = opt.pop("loss_scale", 512.0)  # mmcv's default
    moot = [k for k in _DDP_MOOT if opt.pop(k, None) is not None]
    cfg["optimizer_config"] = {"type": _FP16_HOOKS[hook], **opt}
    if cfg.get("fp16") is None:
        cfg["fp16"] = {"loss_scale": scale}
    notes.append(
        f"optimizer_config.type={hook!r}: fp16 mixed precision with fp16.loss_scale="
        f"{cfg['fp16'].get('loss_scale', scale)!r} and the {_FP16_HOOKS[hook]}"
        + (f"; {', '.join(moot)}: DDP's business under Accelerate (ignored)" if moot else "")
    )


def _moot_keys(
    cfg: MutableMapping, key: str, table: dict[str, str], notes: list[str]
) -> dict[str, Any]:
    section = dict(cfg[key])
    found = {k: section.pop(k) for k in table if k in section}
    for k in found:
        notes.append(f"{key}.{k}: accepted from mmcv and not needed: {table[k]}")
    cfg[key] = section
    return found


def _schedule_unit(cfg: MutableMapping, notes: list[str]) -> None:
    """Under mmcv's cumulative_iters, schedules count iterations (mmcv's runner.iter)."""
    opt = cfg.get("optimizer_config")
    cumulative = opt.get("cumulative_iters", 1) if isinstance(opt, MutableMapping) else 1
    if not isinstance(cumulative, int) or cumulative <= 1:
        return
    for key in ("lr_config", "momentum_config"):
        sched = cfg.get(key)
        if isinstance(sched, MutableMapping) and "unit" not in sched:
            cfg[key] = {**sched, "unit": "iter"}
            notes.append(
                f"{key}: counts train iterations (unit='iter'), as mmcv does under "
                f"optimizer_config.cumulative_iters={cumulative}; unit='step' counts "
                f"optimizer steps"
            )


def translate(cfg: MutableMapping) -> tuple[list[str], list[str]]:
    """Rewrite mmcv idioms of ``cfg`` in place (module doc): (problems, warnings)."""
    problems: list[str] = []
    notes: list[str] = []
    if "total_epochs" in cfg:
        _total_epochs(cfg, problems, notes)
    opt = cfg.get("optimizer_config")
    if isinstance(opt, MutableMapping) and opt.get("type") in _FP16_HOOKS:
        _fp16_hook(cfg, notes)
    _schedule_unit(cfg, notes)
    if isinstance(cfg.get("checkpoint_config"), MutableMapping):
        found = _moot_keys(cfg, "checkpoint_config", {**_CHECKPOINT_NOTES, "sync_buffer": ""}, [])
        notes += [
            f"checkpoint_config.{k}: {_CHECKPOINT_NOTES[k]}" for k in found if k != "sync_buffer"
        ]
        if found.get("sync_buffer"):
            hooks = list(cfg.get("custom_hooks") or [])
            cfg["custom_hooks"] = [*hooks, {"type": "SyncBuffersHook", "priority": "ABOVE_NORMAL"}]
            notes.append(
                "checkpoint_config.sync_buffer=True: a SyncBuffersHook averages the buffers "
                "across processes after every epoch, before the checkpoint is written"
            )
    if isinstance(cfg.get("evaluation"), MutableMapping):
        _moot_keys(cfg, "evaluation", _EVAL_NOTES, notes)
    runner = cfg.get("runner")
    ipu = [k for k in _IPU_KEYS if isinstance(runner, MutableMapping) and k in runner]
    if ipu:
        problems.append(
            f"runner: {', '.join(ipu)} configure mmcv's IPU (Graphcore) runner; acchooks "
            f"runs where Accelerate does (CPU, GPU, ...): remove them (and fp16's IPU keys)"
        )
    return problems, notes
