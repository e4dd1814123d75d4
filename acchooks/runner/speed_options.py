"""The speed and memory switches' options, read by :mod:`acchooks.runner.speed`.

Top-level keys (named as timm's ``train.py`` flags and mmengine's config keys)::

    channels_last = True                     # timm --channels-last: model and inputs
    sync_bn = True                           # mmengine's sync_bn='torch' too (GPU processes)
    compile = True                           # or dict(backend='inductor', mode=None,
                                             #         fullgraph=False, dynamic=None)

``model=dict(type='TimmClassifier', ..., grad_checkpointing=True)`` is the model's own
(:mod:`acchooks.models.timm_classifier`). Plain Python only: the first pass of the config
check reads these before torch is imported; backend and mode names need torch and are
checked in the third pass (:func:`acchooks.runner.speed.check_speed`).
"""

from __future__ import annotations

from ..config.checks import boolean, instance_of, literal, optional, string
from ..config.optionset import Option, OptionSet

COMPILE = OptionSet(
    "compile",
    [
        Option("backend", string, "inductor", "a torch._dynamo backend (list_backends())"),
        Option("mode", optional(string), None, "torch.compile's mode (inductor only)"),
        Option("fullgraph", boolean, False, "torch.compile's fullgraph"),
        Option("dynamic", optional(boolean), None, "torch.compile's dynamic"),
        Option("options", optional(instance_of(dict)), None, "the backend's options"),
    ],
    "``compile=dict(...)``: the arguments of ``torch.compile`` for the model.",
)

SPEED = OptionSet(
    "config",
    [
        Option("channels_last", boolean, False, "model and inputs in channels_last"),
        Option(
            "sync_bn",
            boolean | literal("torch"),
            False,
            "BatchNorm -> SyncBatchNorm with several (GPU) processes",
        ),
        Option(
            "compile",
            instance_of(bool, dict, type(None)),
            None,
            "torch.compile the prepared model: True or dict(backend=..., mode=...) (COMPILE)",
        ),
    ],
    "The speed and memory switches (top-level keys).",
)
