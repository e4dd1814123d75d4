"""Loading weights only: ``load_from``, ``init_cfg=dict(type='Pretrained')``, foreign
``.pth`` files (through ``torch.load(weights_only=True)``, never a full unpickle)."""
from __future__ import annotations

import os.path as osp
import re

import torch

from ..errors import ConfigError

_PREFIXES = ("module.", "_orig_mod.")


def read_weights(path: str) -> dict[str, torch.Tensor]:
    """Model weights from our checkpoint dir, a .safetensors file or a foreign .pth/.pt
    (read with ``torch.load(weights_only=True)``: never unpickles arbitrary objects)."""
    from safetensors.torch import load_file

    if osp.isdir(path):
        from ..checkpoint import load_checkpoint
        return load_checkpoint(path).model_state
    if not osp.exists(path):
        raise ConfigError(f"load_from: checkpoint not found: {path}")
    if path.endswith(".safetensors"):
        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unreadable file the same way
        raise ConfigError(f"load_from: cannot read {path} as a weights-only torch file ({e}); "
                          f"convert it to .safetensors") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_weights(runner, path: str, prefix: str = "", revise_keys=()) -> None:
    """Load weights only (``load_from``); report missing/unexpected/mismatched keys."""
    state = read_weights(path)
    cleaned = {}
    for k, v in state.items():
        for p in _PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        for pat, rep in revise_keys:
            k = re.sub(pat, rep, k)
        cleaned[prefix + k] = v
    model = runner.unwrapped_model
    own = model.state_dict()
    mismatched = [k for k, v in cleaned.items() if k in own and own[k].shape != v.shape]
    for k in mismatched:
        cleaned.pop(k)
    missing, unexpected = model.load_state_dict(cleaned, strict=False)
    runner.logger.info(f"load_from {path}: {len(cleaned)} tensors loaded")
    if missing:
        runner.logger.warning(f"missing keys in source state_dict: {', '.join(missing)}")
    if unexpected:
        runner.logger.warning(f"unexpected keys in source state_dict: {', '.join(unexpected)}")
    if mismatched:
        runner.logger.warning("size mismatch, not loaded: " + ", ".join(
            f"{k} {tuple(state.get(k, own[k]).shape)} vs model {tuple(own[k].shape)}"
            for k in mismatched))
