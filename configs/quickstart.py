# Quickstart: a timm ResNet learns the generated Shapes data on a CPU in about a minute.
#   python train.py --config configs/quickstart.py
_base_ = ["_base_/models/resnet_tiny.py", "_base_/datasets/shapes.py", "_base_/default_runtime.py"]

data = dict(samples_per_gpu=64)
optimizer = dict(type="AdamW", lr=3e-3, weight_decay=0.05)
optimizer_config = dict(grad_clip=dict(max_norm=5.0))
lr_config = dict(
    policy="CosineAnnealing",
    min_lr=1e-5,
    by_epoch=False,
    warmup="linear",
    warmup_iters=30,
    warmup_ratio=0.1,
)
runner = dict(type="EpochBasedRunner", max_epochs=6)
workflow = [("train", 1), ("val", 1)]
evaluation = dict(interval=1, save_best="auto", metric="accuracy", metric_options={"topk": (1,)})
checkpoint_config = dict(interval=1, max_keep_ckpts=2)
log_config = dict(
    interval=10, hooks=[dict(type="TextLoggerHook"), dict(type="TensorboardLoggerHook")]
)
seed = 0
