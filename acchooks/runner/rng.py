"""The RNG states of every process, as plain tensors a checkpoint can hold.

Python's, NumPy's, torch's and (when initialised) CUDA's generators, stacked by rank, so
a resumed run with the same number of processes draws exactly what the interrupted one
would have drawn.
"""

from __future__ import annotations

import torch


def gather_rng_states(accelerator) -> dict[str, torch.Tensor]:
    """Every process's Python, NumPy, torch and CUDA RNG states, stacked by rank
    (plain tensors, so they go into safetensors; a collective: all processes call it)."""
    import random

    import numpy as np

    version, py_state, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    local = {
        "torch": torch.get_rng_state().to(torch.int64),
        "python": torch.tensor([version, *py_state], dtype=torch.int64),
        "python_gauss": torch.tensor(
            [float("nan") if gauss is None else gauss], dtype=torch.float64
        ),
        "numpy": torch.tensor([np_pos, np_has_gauss, *np_keys.tolist()], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        local["cuda"] = torch.stack(torch.cuda.get_rng_state_all()).to(torch.int64)
    if accelerator.num_processes == 1:
        return {k: v.unsqueeze(0) for k, v in local.items()}
    dev = accelerator.device
    return {k: accelerator.gather(v.unsqueeze(0).to(dev)).cpu() for k, v in local.items()}


def restore_rng_states(states: dict[str, torch.Tensor], rank: int) -> None:
    import random

    import numpy as np

    torch.set_rng_state(states["torch"][rank].to(torch.uint8))
    py = states["python"][rank].tolist()
    gauss = float(states["python_gauss"][rank, 0])
    random.setstate((py[0], tuple(py[1:]), None if gauss != gauss else gauss))
    n = states["numpy"][rank].tolist()
    np.random.set_state(
        (
            "MT19937",
            np.array(n[2:], dtype=np.uint32),
            n[0],
            n[1],
            float(states["numpy_gauss"][rank, 0]),
        )
    )
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(states["cuda"][rank].to(torch.uint8)))
