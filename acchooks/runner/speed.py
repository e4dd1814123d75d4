"""The speed and memory switches, applied where the builder prepares the model.

Options are declared in :mod:`.speed_options`; gradient checkpointing is the model's own
(``model=dict(type='TimmClassifier', ..., grad_checkpointing=True)``).

- ``sync_bn=True`` (mmengine's ``sync_bn='torch'`` too): every BatchNorm becomes
  ``torch.nn.SyncBatchNorm`` (timm's ``convert_sync_batchnorm``, which also converts
  timm's fused ``BatchNormAct2d``) before the model is prepared, so DDP wraps the
  converted model. On one process it is skipped with a log line. torch's SyncBatchNorm
  syncs only CUDA/XPU/HPU inputs (its forward raises ``ValueError`` for CPU tensors once a
  process group exists), so several CPU processes are refused with a ConfigError before
  the model is built.
- ``channels_last=True``: ``model.to(memory_format=torch.channels_last)`` before it is
  prepared, and a forward pre-hook on the model that makes a 4-D input tensor
  channels_last. Being on the model, it covers every call of it: train steps (after the
  ``before_train_forward`` stage, so mixed batches too), val phases, EvalHook, PreciseBN.
- ``compile``: ``torch.compile`` of the *prepared* model (outermost, around DDP, where
  Accelerate's ``dynamo_backend`` puts it too). Accelerate keeps its dynamo plugin in the
  process-wide ``AcceleratorState``, fixed by the first Accelerator of a process, so a
  second run in one process would silently keep the first run's setting; the config's
  ``compile`` is therefore applied here, per run. A model Accelerate has already compiled
  (``accelerate launch --dynamo_backend X``) is left as it is: the launcher wins, as for
  mixed precision. Checkpoints never see the compile wrapper: :func:`uncompiled` is what
  the Checkpointer takes the state from and ``Runner.unwrapped_model`` unwraps it too,
  so state-dict keys carry no ``_orig_mod.`` and load into an eager run and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean
from .speed_options import COMPILE, SPEED

# input devices torch.nn.SyncBatchNorm synchronises (its forward refuses the others)
SYNC_BN_DEVICES = ("cuda", "xpu", "hpu")


def switches(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The switches of ``cfg``, defaults filled in."""
    return SPEED.resolve({k: cfg[k] for k in SPEED.names() if k in cfg})


def compile_kwargs(value: Any) -> dict[str, Any] | None:
    """``torch.compile``'s keyword arguments for a ``compile`` value; None: no compile."""
    if value is None or value is False:
        return None
    given = {} if value is True else value
    resolved = COMPILE.resolve(given)
    return {k: v for k, v in resolved.items() if v is not None}


# ---------------------------------------------------------------- config check (pass 3)
def check_speed(cfg: Mapping[str, Any]) -> list[str]:
    """The ``compile`` backend and mode, against what this torch offers."""
    value = cfg.get("compile")
    if not isinstance(value, (bool, dict)):
        return []
    kwargs = compile_kwargs(value)
    if kwargs is None:
        return []
    import torch._dynamo

    problems = []
    backend = kwargs["backend"]
    registered = torch._dynamo.list_backends(exclude_tags=())
    if backend not in registered:
        shown = sorted(set(torch._dynamo.list_backends()) | {"eager", "aot_eager"})
        problems.append(
            f"compile.backend: unknown torch.compile backend {backend!r}"
            f"{did_you_mean(backend, registered)} (valid: {', '.join(shown)}; all: "
            f"torch._dynamo.list_backends(exclude_tags=()))"
        )
    mode = kwargs.get("mode")
    if mode is not None:
        from torch._inductor import list_mode_options

        modes = list(list_mode_options())
        if backend != "inductor":
            problems.append(
                f"compile.mode: {mode!r} is a mode of the 'inductor' backend; backend "
                f"{backend!r} takes none (remove mode, or use backend='inductor')"
            )
        elif mode not in modes:
            problems.append(
                f"compile.mode: unknown torch.compile mode {mode!r}{did_you_mean(mode, modes)} "
                f"(valid: {', '.join(map(repr, modes))})"
            )
        if kwargs.get("options"):
            problems.append("compile: give mode or options, not both (torch.compile takes one)")
    return problems


# ---------------------------------------------------------------- before the model is built
def check_processes(cfg: Mapping[str, Any], accelerator: Any) -> None:
    """Refuse ``sync_bn`` on several processes whose device SyncBatchNorm cannot sync."""
    if not switches(cfg)["sync_bn"] or accelerator.num_processes == 1:
        return
    device = accelerator.device.type
    if device not in SYNC_BN_DEVICES:
        raise ConfigError(
            f"sync_bn: torch.nn.SyncBatchNorm synchronises only {'/'.join(SYNC_BN_DEVICES)} "
            f"inputs, and this run has {accelerator.num_processes} {device} processes "
            f"(torch {torch.__version__} raises 'SyncBatchNorm expected input tensor to be "
            f"on GPU' there); remove sync_bn, or train on GPUs (PreciseBNHook recomputes "
            f"BatchNorm statistics on CPU runs)"
        )


# ---------------------------------------------------------------- before prepare()
def channels_last_inputs(module: nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook: the first argument, if a 4-D tensor, in channels_last."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def prepare_model(
    model: nn.Module, cfg: Mapping[str, Any], accelerator: Any, logger: Any
) -> nn.Module:
    """``sync_bn`` and ``channels_last`` on the built model, before ``prepare``."""
    on = switches(cfg)
    if on["sync_bn"]:
        if accelerator.num_processes == 1:
            logger.info("sync_bn: skipped, one process (nothing to synchronise)")
        else:
            from timm.layers import convert_sync_batchnorm

            model = convert_sync_batchnorm(model)
            n = sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
            logger.info(
                f"sync_bn: {n} BatchNorm layers converted to SyncBatchNorm over "
                f"{accelerator.num_processes} processes"
            )
    if on["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(channels_last_inputs)
        logger.info("channels_last: model and 4-D inputs in torch.channels_last")
    return model


# ---------------------------------------------------------------- after prepare()
def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` is a ``torch.compile`` wrapper (``OptimizedModule``)."""
    from accelerate.utils import is_compiled_module

    return is_compiled_module(model)


def uncompiled(model: nn.Module) -> nn.Module:
    """``model`` without an outer ``torch.compile`` wrapper (the DDP/FSDP or plain model
    whose state dict has no ``_orig_mod.`` prefix)."""
    return model._orig_mod if is_compiled(model) else model


def compile_model(prepared: nn.Module, cfg: Mapping[str, Any], logger: Any) -> nn.Module:
    """The prepared model, compiled as ``cfg.compile`` asks (see the module doc)."""
    kwargs = compile_kwargs(switches(cfg)["compile"])
    if is_compiled(prepared):
        if kwargs is not None:
            logger.info(
                "compile: the model was compiled by `accelerate launch --dynamo_backend`; it wins"
            )
        return prepared
    if kwargs is None:
        return prepared
    logger.info(
        "compile: torch.compile(model, " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
    )
    return torch.compile(prepared, **kwargs)
