"""The top-level keys of a config (:data:`TOP_LEVEL`), where each section's option set is
declared (:data:`SECTIONS`) and the shape of a ``workflow`` phase; walked by
:mod:`acchooks.config.schema`."""

from __future__ import annotations

from .checks import Check, anything, boolean, instance_of, is_int
from .optionset import Option, OptionSet, declarations

_DICT, _DICT_OR_NONE = instance_of(dict), instance_of(dict, type(None))
_LIST = instance_of(list, tuple)
_MMCV = "accepted from MMCV/MMClassification configs; Accelerate decides it at launch"

TOP_LEVEL = OptionSet(
    "config",
    [
        Option("model", _DICT, required=True),
        Option("data", _DICT, required=True),
        Option("optimizer", _DICT, required=True),
        Option("optimizer_config", _DICT_OR_NONE),
        Option("lr_config", _DICT_OR_NONE),
        Option("momentum_config", _DICT_OR_NONE),
        Option("runner", _DICT, required=True),
        Option("checkpoint_config", _DICT_OR_NONE),
        Option("log_config", _DICT_OR_NONE),
        Option("evaluation", _DICT_OR_NONE),
        Option("custom_hooks", _LIST),
        Option("custom_imports", _DICT_OR_NONE),
        Option("workflow", _LIST),
        Option("work_dir", instance_of(str, type(None))),
        Option("load_from", instance_of(str, dict, type(None))),
        Option("resume_from", instance_of(str, type(None))),
        Option("seed", instance_of(int, type(None))),
        Option("deterministic", boolean),
        Option("accelerator", _DICT),
        Option("fp16", _DICT_OR_NONE),
        Option("progress_config", _DICT_OR_NONE),
        Option("hook_timing", _DICT),
        Option("mixup", _DICT_OR_NONE),
        Option("sampler", _DICT_OR_NONE),
        *declarations("acchooks.runner.speed_options").SPEED,  # channels_last, sync_bn, compile
        Option("auto_scale_lr", _DICT_OR_NONE),
        Option("dist_params", _DICT, doc=_MMCV),
        Option("log_level", instance_of(str)),
        *(
            Option(k, anything, doc=_MMCV)
            for k in ("gpu_ids", "opencv_num_threads", "mp_start_method", "device")
        ),
    ],
    "The top-level keys acchooks reads and the type of each.",
)
# top-level key -> (module, name) of the option set declared beside its consumer
# (progress_config: acchooks.hooks.options.PROGRESS_CONFIG, see _check_progress)
SECTIONS = {
    "accelerator": ("acchooks.runner.options", "ACCELERATOR"),
    "hook_timing": ("acchooks.hooks.options", "HOOK_TIMING"),
    "data": ("acchooks.runner.options", "DATA"),
    "log_config": ("acchooks.runner.options", "LOG_CONFIG"),
    "fp16": ("acchooks.runner.loss_scale", "FP16"),
    "auto_scale_lr": ("acchooks.optim.options", "AUTO_SCALE_LR"),
}
WORKFLOW_PHASE = Check(
    "('train', N) or ('val', N) with N >= 1",
    lambda w: (
        isinstance(w, (list, tuple))
        and len(w) == 2
        and w[0] in ("train", "val")
        and is_int(w[1])
        and w[1] >= 1
    ),
)
