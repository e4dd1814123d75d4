# Runtime defaults, as in MMClassification's configs/_base_/default_runtime.py
checkpoint_config = dict(interval=1)
log_config = dict(
    interval=50,
    hooks=[
        dict(type="TextLoggerHook"),
        dict(type="TensorboardLoggerHook"),
    ],
)
# No dist_params: Accelerate picks the process-group backend (nccl on GPUs, gloo on CPUs).
# An MMCV config that sets dist_params (or gpu_ids) is accepted and that key ignored.
log_level = "INFO"
load_from = None
resume_from = None
workflow = [("train", 1)]
