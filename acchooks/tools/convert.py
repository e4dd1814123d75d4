"""``acchooks convert IN OUT [--prefix-map old=new ...] [--strip-prefix module.]``

A foreign checkpoint to ``model.safetensors`` (weights only), loadable by ``load_from``,
``init_cfg=dict(type='Pretrained')``, ``acchooks test`` or ``timm``.

IN is a ``.pth``/``.pt`` file, read with ``torch.load(weights_only=True)`` only (a file
that needs arbitrary code to unpickle is refused, never run), a ``.safetensors`` file or
one of our checkpoint directories. The weights may sit under ``state_dict``, ``model`` or
``module``; wrapper prefixes (``module.``, ``_orig_mod.``) are stripped as ``load_from``
does. An MMClassification checkpoint (``state_dict`` with ``backbone.`` keys) is renamed
to timm's names: ``backbone.X`` -> ``X``, ``head.fc.X`` -> ``fc.X`` (timm's ResNet
classifier; pass ``--prefix-map head.fc.=head.`` etc. for models whose classifier is
named otherwise). ``--prefix-map`` rules are applied first, in order; an mmcls default
rule whose old prefix you mapped yourself is not applied.

Of one of our checkpoint directories with an EMAHook state, ``--weights ema|raw`` picks the
EMA or the trained weights (default: those EvalHook evaluated in that run; raw, saying so,
if the checkpoint does not record it); ``--weights ema`` on anything else is an error.

OUT is the file to write, or a directory to write ``model.safetensors`` into. Tensors are
made contiguous; tensors sharing memory (tied weights) are stored as separate copies,
since safetensors refuses shared storage. Nothing is written when IN cannot be used.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile

from ..errors import ConfigError
from . import ToolError

MMCLS_RULES = (("backbone.", ""), ("head.fc.", "fc."))


def _parse_map(items: list[str]) -> list[tuple[str, str]]:
    rules = []
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise ToolError(f"--prefix-map: expected old=new (e.g. backbone.=), got {item!r}")
        rules.append((old, new))
    return rules


def convert_state(
    state: dict,
    prefix_map: list[tuple[str, str]] = (),
    strip_prefixes: list[str] = (),
    source: str = "",
) -> tuple[dict, list[str]]:
    """The renamed state and the rules applied (as 'old -> new' strings)."""
    from ..checkpoint.weights import revise_state

    rules = [(p, "") for p in strip_prefixes] + list(prefix_map)
    state = revise_state(state, what="convert", source=source)  # module. / _orig_mod.
    if any(k.startswith("backbone.") for k in state):
        given = {old for old, _ in rules}
        rules += [r for r in MMCLS_RULES if r[0] not in given]
    applied = [f"{old}* -> {new}*" for old, new in rules if any(k.startswith(old) for k in state)]
    state = revise_state(
        state,
        revise_keys=[("^" + re.escape(old), new.replace("\\", "\\\\")) for old, new in rules],
        what="convert",
        source=source,
    )
    return state, applied


def _output_file(src: str, out: str, overwrite: bool) -> str:
    """The file to write (``out``, or ``model.safetensors`` in the directory ``out``),
    refused before anything is read when it would clobber a file or the input."""
    if os.path.isdir(out) or out.endswith(("/", os.sep)):
        out = os.path.join(out, "model.safetensors")
    if os.path.exists(out) and not overwrite:
        raise ToolError(f"{out} exists; pass --force to replace it")
    if os.path.abspath(out) == os.path.abspath(src):
        raise ToolError("IN and OUT are the same file")
    return out


def _read_state(src: str, weights: str | None = None) -> tuple[dict, str]:
    """``src``'s weights (the EMA or raw ones, ``--weights``) and a phrase naming them;
    any reason they cannot be used is one ToolError line."""
    from ..checkpoint.ema_choice import choose_weights

    if not os.path.exists(src):
        raise ToolError(f"input not found: {src}")
    try:
        state, _, which = choose_weights(src, weights, "convert", "--weights")
    except ConfigError as e:
        raise ToolError(str(e).replace("\n", " ")) from None
    except Exception as e:  # noqa: BLE001 - a damaged safetensors file or checkpoint dir
        raise ToolError(
            f"convert: cannot read {src}: {str(e).splitlines()[0] if str(e) else e!r}"
        ) from None
    if not state:
        raise ToolError(
            f"convert: {src} holds no tensors (expected a state_dict: a dict of "
            f"name -> tensor, possibly under 'state_dict' or 'model')"
        )
    return state, which


def _standalone_tensors(state: dict) -> tuple[dict, dict]:
    """The tensors to save, in the input's order, and the aliases (tied names) that were
    given their own copy; safetensors refuses tensors that share memory."""
    from ..checkpoint.format import CheckpointError, dedup_tensors

    try:
        tensors, aliases = dedup_tensors(state, "convert")
    except CheckpointError as e:
        raise ToolError(str(e)) from None
    for alias, key in aliases.items():  # a standalone file needs every name: copy ties
        tensors[alias] = tensors[key].clone()
    return {k: tensors[k] for k in state}, aliases


def _save_atomically(tensors: dict, out: str, src: str) -> None:
    """Write through a temporary file in ``out``'s folder, so that a failed write leaves
    no partial ``out`` (and an existing one untouched)."""
    import safetensors.torch

    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        safetensors.torch.save_file(
            tensors, tmp, metadata={"format": "pt", "source": os.path.basename(src)}
        )
        os.replace(tmp, out)
    except Exception as e:
        raise ToolError(
            f"convert: cannot write {out}: {str(e).splitlines()[0] if str(e) else e!r}"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def convert(
    src: str,
    out: str,
    prefix_map: list[tuple[str, str]] = (),
    strip_prefixes: list[str] = (),
    overwrite: bool = False,
    weights: str | None = None,
) -> dict:
    """Write ``src``'s weights (``weights='ema'|'raw'`` of a checkpoint with an EMAHook)
    to the safetensors file ``out`` (or ``out/model.safetensors``); returns
    ``{'out', 'tensors', 'renamed', 'shared', 'weights'}`` (``weights``: which, in words)."""
    out = _output_file(src, out, overwrite)
    state, which = _read_state(src, weights)
    state, applied = convert_state(state, prefix_map, strip_prefixes, source=src)
    tensors, aliases = _standalone_tensors(state)
    _save_atomically(tensors, out, src)
    return {
        "out": out,
        "tensors": len(tensors),
        "renamed": applied,
        "shared": sorted(aliases),
        "weights": which,
    }


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``acchooks convert``."""
    p = subparsers.add_parser(
        "convert",
        help="convert a .pth / mmcls checkpoint to model.safetensors (weights only)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", metavar="IN", help=".pth/.pt file, .safetensors file or checkpoint dir")
    p.add_argument("out", metavar="OUT", help="output .safetensors file, or a directory")
    p.add_argument(
        "--prefix-map",
        nargs="+",
        default=[],
        metavar="OLD=NEW",
        help="rename key prefixes, e.g. backbone.= head.fc.=head.",
    )
    p.add_argument(
        "--strip-prefix",
        nargs="+",
        default=[],
        metavar="PREFIX",
        help="remove these key prefixes, e.g. module.",
    )
    p.add_argument(
        "--weights",
        choices=["ema", "raw"],
        help="of a checkpoint with an EMAHook: its EMA or its trained (raw) weights "
        "(default: those EvalHook evaluated in that run; raw if it does not say)",
    )
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``acchooks convert``: convert, print what was renamed and written; the exit status."""
    res = convert(
        args.src,
        args.out,
        _parse_map(args.prefix_map),
        args.strip_prefix,
        args.force,
        args.weights,
    )
    print(f"converted {res['weights']}")
    for rule in res["renamed"]:
        print(f"renamed {rule}")
    if res["shared"]:
        print(
            f"{len(res['shared'])} tensor(s) shared memory with another; stored as copies: "
            f"{', '.join(res['shared'][:5])}"
        )
    print(f"{res['tensors']} tensors written to {res['out']}")
    return 0
