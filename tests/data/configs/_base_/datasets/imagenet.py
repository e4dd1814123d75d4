data_root = "data/imagenet"
data = dict(
    samples_per_gpu=32,
    workers_per_gpu=2,
    train=dict(type="ImageFolder", root=data_root + "/train"),
    val=dict(type="ImageFolder", root=data_root + "/val"),
    test=dict(type="ImageFolder", root=data_root + "/val"),
)
evaluation = dict(interval=1, metric="accuracy", metric_options={"topk": (1, 5)})
