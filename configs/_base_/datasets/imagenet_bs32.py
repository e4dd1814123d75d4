# ImageNet-style folders: data/imagenet/{train,val}/<class>/<image>.JPEG
data = dict(
    samples_per_gpu=32,
    workers_per_gpu=4,
    train=dict(type="ImageFolder", root="data/imagenet/train", input_size=224, is_training=True),
    val=dict(type="ImageFolder", root="data/imagenet/val", input_size=224, crop_pct=0.875),
    test=dict(type="ImageFolder", root="data/imagenet/val", input_size=224, crop_pct=0.875),
)
evaluation = dict(interval=1, metric="accuracy", metric_options={"topk": (1, 5)})
