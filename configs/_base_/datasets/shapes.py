# Generated coloured shapes (acchooks.datasets.Shapes): no download, deterministic
data = dict(
    samples_per_gpu=32,
    workers_per_gpu=0,
    train=dict(
        type="Shapes", num_samples=2000, img_size=32, num_classes=4, seed=0, is_training=True
    ),
    val=dict(type="Shapes", num_samples=500, img_size=32, num_classes=4, seed=1),
    test=dict(type="Shapes", num_samples=500, img_size=32, num_classes=4, seed=2),
)
evaluation = dict(interval=1, metric="accuracy", metric_options={"topk": (1,)})
