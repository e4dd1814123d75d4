# MMClassification-style dataset base: helper lists that configs read through
# {{_base_.xxx}}, and timm/Shapes data that runs on a CPU in seconds
policy_imagenet = [
    [dict(type="Posterize", bits=4, prob=0.4), dict(type="Rotate", angle=30.0, prob=0.6)],
    [dict(type="Solarize", thr=256 / 9 * 4, prob=0.6)],
]
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="AutoAugment", policies=policy_imagenet),
]
data = dict(
    samples_per_gpu=8,
    workers_per_gpu=0,
    train=dict(type="Shapes", num_samples=16, img_size=32, num_classes=4, is_training=True),
    val=dict(type="Shapes", num_samples=8, img_size=32, num_classes=4, seed=1),
)
evaluation = dict(interval=1, metric="accuracy")
