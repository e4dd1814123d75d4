# ResNet-50 on ImageNet-1k, 8 GPUs x 32 images: a starting point for real training.
#   accelerate launch --config_file launch/multi_gpu.yaml train.py --config configs/resnet50_8xb32_in1k.py
_base_ = [
    "_base_/models/resnet50.py",
    "_base_/datasets/imagenet_bs32.py",
    "_base_/schedules/imagenet_bs256.py",
    "_base_/default_runtime.py",
]
accelerator = dict(mixed_precision="bf16")
lr_config = dict(
    policy="step", step=[30, 60, 90], warmup="linear", warmup_iters=2500, warmup_ratio=0.1
)
evaluation = dict(interval=1, save_best="auto", metric="accuracy", metric_options={"topk": (1, 5)})
checkpoint_config = dict(interval=1, max_keep_ckpts=3)
log_config = dict(
    interval=100, hooks=[dict(type="TextLoggerHook"), dict(type="TensorboardLoggerHook")]
)
