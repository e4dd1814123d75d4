"""What a timm model accepts, found without building it.

``timm.create_model(name, **kwargs)`` calls the model's entrypoint, which merges its own
architecture arguments into ``kwargs`` and hands them to
``timm.models.build_model_with_cfg(model_cls, variant, pretrained, **kwargs)``, which
calls ``model_cls(**kwargs)``. :func:`model_class` runs the entrypoint with
``build_model_with_cfg`` replaced by a recorder that stops before anything is built, so
it learns ``model_cls`` (every architecture of timm 1.0 goes through it, ~3 ms each);
:func:`unexpected_kwargs` then compares the user's keys with ``model_cls.__init__``'s
signature. A class whose ``__init__`` takes ``**kwargs`` accepts anything: unchecked.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

# create_model's own parameters, and the keys build_model_with_cfg consumes before
# calling the class (features_only and its companions, pruned)
FACTORY_KEYS = frozenset(
    {
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "checkpoint_path",
        "cache_dir",
        "scriptable",
        "exportable",
        "no_jit",
        "pruned",
        "features_only",
        "out_indices",
        "feature_cls",
        "device",
        "dtype",
    }
)


class _Captured(Exception):
    """Raised by the stand-in ``build_model_with_cfg``: carries the model class."""


def _recorder(model_cls: Any, variant: str, pretrained: bool, **kwargs: Any) -> Any:
    raise _Captured(model_cls)


@contextmanager
def _recording():
    """``build_model_with_cfg`` replaced by :func:`_recorder` in every timm module that
    imported it (the entrypoints look it up in their module's globals)."""
    from timm.models import _builder

    real = _builder.build_model_with_cfg
    patched = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("timm.") and getattr(m, "build_model_with_cfg", None) is real
    ]
    for m in patched:
        m.build_model_with_cfg = _recorder
    try:
        yield
    finally:
        for m in patched:
            m.build_model_with_cfg = real


@lru_cache(maxsize=64)
def model_class(arch: str) -> type | None:
    """The class timm builds for the architecture ``arch`` (no pretrained tag), or None
    when its entrypoint does not go through ``build_model_with_cfg``."""
    from timm.models import model_entrypoint

    entry = model_entrypoint(arch)
    with _recording():
        try:
            entry(pretrained=False)
        except _Captured as captured:
            cls = captured.args[0]
            return cls if inspect.isclass(cls) else None
        except Exception:  # an entrypoint that needs arguments: no check
            return None
    return None


def init_parameters(cls: type) -> tuple[list[str], bool]:
    """The keyword names ``cls.__init__`` takes, and whether it also takes ``**kwargs``."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # minus self
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def unexpected_kwargs(arch: str, kwargs: Mapping[str, Any]) -> tuple[list[str], list[str], str]:
    """``(unexpected, accepted, class name)`` for the keyword arguments ``kwargs`` given to
    ``timm.create_model(arch, ...)``; nothing unexpected when the class takes ``**kwargs``
    or could not be found. ``None`` values are dropped by timm, so never unexpected."""
    cls = model_class(arch)
    if cls is None:
        return [], [], ""
    names, var_kw = init_parameters(cls)
    if var_kw:
        return [], names, cls.__name__
    accepted = set(names) | FACTORY_KEYS
    bad = [k for k, v in kwargs.items() if v is not None and k not in accepted]
    return bad, sorted(names), cls.__name__


def grad_checkpointing_problem(arch: str) -> str | None:
    """Why ``set_grad_checkpointing(True)`` would fail for ``arch``, or None: the class has
    no such method, or its method is timm's ``assert not enable`` (not supported)."""
    cls = model_class(arch)
    if cls is None:
        return None
    method = getattr(cls, "set_grad_checkpointing", None)
    if method is None:
        return f"{cls.__name__} has no set_grad_checkpointing"
    try:
        source = inspect.getsource(method)
    except (OSError, TypeError):
        return None
    if "assert not enable" in source:
        return f"{cls.__name__}.set_grad_checkpointing says gradient checkpointing is not supported"
    return None
