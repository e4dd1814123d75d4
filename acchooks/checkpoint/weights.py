"""Loading weights only: ``load_from`` and ``init_cfg=dict(type='Pretrained')``.

Sources: our checkpoint directories, ``.safetensors`` files and foreign ``.pth``/``.pt``
files, the latter through ``torch.load(weights_only=True)`` only: a file holding anything
but tensors and plain containers is refused, never unpickled. Keys are cleaned in this
order: wrapper prefixes ``module.``/``_orig_mod.`` stripped, ``prefix`` selects and strips
(mmcv's Pretrained semantics), then ``revise_keys`` regex renames. Missing, unexpected and
shape-mismatched keys are reported; the model is changed only by a load that succeeds.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean
from .ema_choice import check_weights_choice, choose_weights

if TYPE_CHECKING:
    from ..runner.runner import Runner

_WRAPPERS = ("module.", "_orig_mod.")
_NESTED = ("state_dict", "model", "module")  # where other tools put the weights
_PRETRAINED_KEYS = ("type", "checkpoint", "prefix", "revise_keys", "strict", "map_location")
_LOAD_FROM_KEYS = ("checkpoint", "prefix", "revise_keys", "strict", "weights")


@dataclass
class LoadReport:
    """What a weights-only load did; ``mismatched`` holds ``(key, saved, model)`` shapes."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)


def read_weights(path: str | os.PathLike, what: str = "load_from") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint dir, a .safetensors file or a foreign .pth/.pt file."""
    from .format import CheckpointError
    from .reader import read_model_state, read_safetensors
    from .workdir import follow_latest

    try:
        path = follow_latest(path)
    except CheckpointError as e:
        raise ConfigError(f"{what}: {e}") from None
    if os.path.isdir(path):
        return read_model_state(path)
    if not os.path.exists(path):
        raise ConfigError(f"{what}: checkpoint not found: {path}")
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any refusal or damage reads the same to the user
        raise ConfigError(
            f"{what}: cannot read {path} with torch.load(weights_only=True): {_refusal(e)}. "
            f"acchooks never unpickles arbitrary objects; save only the tensors (the "
            f"state_dict) or convert the file to .safetensors, and load that"
        ) from None
    for key in _NESTED:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ConfigError(
            f"{what}: {path} holds a {type(obj).__name__}, expected a state_dict "
            f"(a dict of tensors, possibly under 'state_dict' or 'model')"
        )
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise ConfigError(f"{what}: {path} holds no tensors (keys: {_names(list(map(str, obj)))})")
    return tensors


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _refusal(e: Exception) -> str:
    """Why torch.load refused a file, in a few words; never torch's advice to load it
    unsafely (``weights_only=False``, allow-listing globals)."""
    text = str(e).strip()
    if "Weights only load failed" in text:
        found = _GLOBAL.search(text)
        return (
            f"it holds {found.group(1)}, which is neither a tensor nor a plain container"
            if found
            else "it holds objects other than tensors and plain containers"
        )
    first = text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def revise_state(
    state: Mapping[str, torch.Tensor],
    prefix: str | None = None,
    revise_keys: Iterable[tuple[str, str]] = (),
    what: str = "load_from",
    source: str = "",
) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes, select and strip ``prefix``, apply ``revise_keys``."""
    out = {}
    for k, v in state.items():
        for p in _WRAPPERS:
            while k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    if prefix:
        if not prefix.endswith("."):
            prefix += "."
        out = {k[len(prefix) :]: v for k, v in out.items() if k.startswith(prefix)}
        if not out:
            tops = sorted({k.split(".", 1)[0] + "." for k in state})
            raise ConfigError(
                f"{what}: no key of {source} starts with prefix '{prefix}'; its "
                f"keys start with {', '.join(tops[:8])}"
            )
    for pat, rep in revise_keys:
        out = {re.sub(pat, rep, k): v for k, v in out.items()}
    return out


def _names(keys: list[str], limit: int = 10) -> str:
    return ", ".join(keys[:limit]) + (
        f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    )


def _match(
    own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str
) -> LoadReport:
    """Which keys of ``state`` load into a model whose state_dict is ``own``."""
    rep = LoadReport(source)
    for k, v in state.items():
        if k not in own:
            rep.unexpected.append(k)
        elif v.shape != own[k].shape:
            rep.mismatched.append((k, tuple(v.shape), tuple(own[k].shape)))
        else:
            rep.loaded.append(k)
    rep.missing = [k for k in own if k not in state]
    return rep


def _refuse(
    rep: LoadReport, state: Mapping, own: Mapping, shapes: list[str], what: str, strict: bool
) -> None:
    """ConfigError if nothing fits, or if a ``strict`` load does not fit exactly."""
    if not rep.loaded:
        raise ConfigError(
            f"{what}: no tensor of {rep.source} fits the model ({len(state)} keys such as "
            f"{_names(list(state), 3) or 'none'}; the model's keys look like "
            f"{_names(list(own), 3)}); the model is unchanged (hint: set prefix or revise_keys)"
        )
    if strict and (rep.missing or rep.unexpected or rep.mismatched):
        raise ConfigError(
            f"{what}: strict load of {rep.source} failed; the model is unchanged: "
            f"missing {_names(rep.missing) or 'none'}; unexpected "
            f"{_names(rep.unexpected) or 'none'}; shape mismatch "
            f"{_names(shapes) or 'none'}"
        )


def _log_report(
    log: logging.Logger, rep: LoadReport, n_own: int, shapes: list[str], what: str
) -> None:
    source = rep.source
    log.info(f"{what}: loaded {len(rep.loaded)} of the model's {n_own} tensors from {source}")
    if rep.missing:
        log.warning(
            f"{what}: {len(rep.missing)} model key(s) not in {source}, left as "
            f"initialised: {_names(rep.missing)}"
        )
    if rep.unexpected:
        log.warning(
            f"{what}: {len(rep.unexpected)} key(s) of {source} not in the model, "
            f"ignored: {_names(rep.unexpected)}"
        )
    if rep.mismatched:
        log.warning(f"{what}: {len(shapes)} shape mismatch(es), not loaded: {_names(shapes)}")


def load_state_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    what: str = "load_from",
    strict: bool = False,
    logger: logging.Logger | None = None,
) -> LoadReport:
    """Copy the tensors of ``state`` whose names and shapes match into ``model``.

    Everything is checked before the model is touched; if torch still fails midway, the
    overwritten tensors are put back, so a failed load leaves the model as it was.
    """
    own = model.state_dict()
    rep = _match(own, state, source)
    shapes = [f"{k} {s} vs model {m}" for k, s, m in rep.mismatched]
    _refuse(rep, state, own, shapes, what, strict)
    backup = {k: own[k].to("cpu", copy=True) for k in rep.loaded}
    try:
        model.load_state_dict({k: state[k] for k in rep.loaded}, strict=False)
    except Exception as e:
        with torch.no_grad():  # straight into the tensors: the module hook that failed is skipped
            for k, v in backup.items():
                own[k].copy_(v)
        raise ConfigError(f"{what}: loading {source} failed ({e}); the model is unchanged") from e
    _log_report(logger or logging.getLogger("acchooks"), rep, len(own), shapes, what)
    return rep


def _load_options(spec: Any, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    """``spec`` as a dict of load options, or ConfigError naming every problem."""
    spec = {"checkpoint": spec} if isinstance(spec, (str, os.PathLike)) else spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{what}: expected a path or a dict, got {spec!r}")
    problems = [
        f"{what}: unexpected key '{k}'{did_you_mean(k, allowed)} (accepted: {', '.join(allowed)})"
        for k in spec
        if k not in allowed
    ]
    if not isinstance(spec.get("checkpoint"), (str, os.PathLike)):
        problems.append(f"{what}.checkpoint: expected a path, got {spec.get('checkpoint')!r}")
    if spec.get("prefix") is not None and not isinstance(spec["prefix"], str):
        problems.append(
            f"{what}.prefix: expected a str such as 'backbone.', got {spec['prefix']!r}"
        )
    if "weights" in spec:
        problems += check_weights_choice(spec["weights"], f"{what}.weights")
    rk = spec.get("revise_keys", ())
    if not (
        isinstance(rk, (list, tuple))
        and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(s, str) for s in p)
            for p in rk
        )
    ):
        problems.append(
            f"{what}.revise_keys: expected a list of (regex, replacement) pairs, got {rk!r}"
        )
    else:
        for pat, _ in rk:
            try:
                re.compile(pat)
            except re.error as e:
                problems.append(f"{what}.revise_keys: bad regex {pat!r} ({e})")
    if problems:
        raise ConfigError(problems)
    return dict(spec)


def check_load_spec(spec: Any, what: str = "load_from", pretrained: bool = False) -> list[str]:
    """Config-time problems of a ``load_from`` value (``pretrained=False``) or an
    ``init_cfg`` (``pretrained=True``): structure and that the file exists; reads nothing."""
    specs = spec if pretrained and isinstance(spec, (list, tuple)) else [spec]
    problems: list[str] = []
    for i, s in enumerate(specs):
        where = f"{what}[{i}]" if specs is spec else what
        try:
            if pretrained:
                _pretrained_options(s, where)
            else:
                opts = _load_options(s, _LOAD_FROM_KEYS, where)
                if not os.path.exists(opts["checkpoint"]):
                    problems.append(f"{where}: checkpoint not found: {opts['checkpoint']}")
        except ConfigError as e:
            problems += e.problems
    return problems


def _pretrained_options(init_cfg: Any, what: str) -> dict[str, Any]:
    if not isinstance(init_cfg, Mapping) or init_cfg.get("type") != "Pretrained":
        got = init_cfg.get("type") if isinstance(init_cfg, Mapping) else init_cfg
        raise ConfigError(
            f"{what}: {got!r} is not supported; acchooks supports "
            f"dict(type='Pretrained', checkpoint=PATH, prefix=None, "
            f"revise_keys=[]) (timm initialises the model otherwise)"
        )
    opts = _load_options(init_cfg, _PRETRAINED_KEYS, what)
    if not os.path.exists(opts["checkpoint"]):
        raise ConfigError(f"{what}.checkpoint: checkpoint not found: {opts['checkpoint']}")
    return opts


def load_weights(runner: Runner, spec: Any) -> LoadReport:
    """``load_from``: a path, or ``dict(checkpoint=PATH, prefix=.., revise_keys=[..],
    strict=False, weights='ema'|'raw')``; weights only, into the unwrapped model.
    ``weights`` picks the EMA or the raw weights of a checkpoint (:func:`~.ema_choice.choose_weights`)."""
    opts = _load_options(spec, _LOAD_FROM_KEYS, "load_from")
    path = os.fspath(opts["checkpoint"])
    chosen, _, which = choose_weights(path, opts.get("weights"), "load_from")
    runner.logger.info(f"load_from: loading {which}")
    state = revise_state(
        chosen,
        opts.get("prefix"),
        opts.get("revise_keys", ()),
        "load_from",
        path,
    )
    return load_state_into(
        runner.unwrapped_model,
        state,
        source=path,
        what="load_from",
        strict=bool(opts.get("strict", False)),
        logger=runner.logger,
    )


def init_from_pretrained(
    model: nn.Module,
    init_cfg: Any,
    what: str = "model.init_cfg",
    logger: logging.Logger | None = None,
) -> list[LoadReport]:
    """``init_cfg=dict(type='Pretrained', checkpoint=.., prefix=..)`` (or a list of them),
    applied when the model is built."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    reports = []
    for i, c in enumerate(cfgs):
        where = f"{what}[{i}]" if isinstance(init_cfg, (list, tuple)) else what
        opts = _pretrained_options(c, where)
        path = os.fspath(opts["checkpoint"])
        state = revise_state(
            read_weights(path, where), opts.get("prefix"), opts.get("revise_keys", ()), where, path
        )
        reports.append(
            load_state_into(
                model,
                state,
                source=path,
                what=where,
                strict=bool(opts.get("strict", False)),
                logger=logger,
            )
        )
    return reports
