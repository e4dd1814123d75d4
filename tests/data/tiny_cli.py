# A tiny config for CLI tests: timm's test_resnet on 64 generated 32 px images.
model = dict(type="TimmClassifier", model_name="test_resnet", num_classes=4, pretrained=False)
data = dict(
    samples_per_gpu=16,
    workers_per_gpu=0,
    train=dict(type="Shapes", num_samples=64, img_size=32, num_classes=4, seed=0, is_training=True),
    val=dict(type="Shapes", num_samples=30, img_size=32, num_classes=4, seed=1),
)
optimizer = dict(type="SGD", lr=0.01, momentum=0.9)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy="step", step=[1], gamma=0.1)
runner = dict(type="EpochBasedRunner", max_epochs=2)
checkpoint_config = dict(interval=1)
evaluation = dict(interval=1, metric="accuracy", metric_options={"topk": (1, 2)})
log_config = dict(
    interval=1, hooks=[dict(type="TextLoggerHook"), dict(type="TensorboardLoggerHook")]
)
workflow = [("train", 1)]
seed = 0
