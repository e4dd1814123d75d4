# Runtime defaults, as in MMClassification's configs/_base_/default_runtime.py
checkpoint_config = dict(interval=1)
log_config = dict(
    interval=50,
    hooks=[
        dict(type="TextLoggerHook"),
        dict(type="TensorboardLoggerHook"),
    ],
)
dist_params = dict(backend="nccl")  # accepted for MMCV configs; Accelerate picks the backend
log_level = "INFO"
load_from = None
resume_from = None
workflow = [("train", 1)]
