_base_ = [
    "_base_/models/resnet18.py",
    "_base_/datasets/imagenet.py",
    "_base_/schedules/sgd_100e.py",
    "_base_/default_runtime.py",
]
model = dict(num_classes=10)
data = dict(samples_per_gpu=64)
optimizer = dict(_delete_=True, type="AdamW", lr=1e-3)
workflow = [("train", 1), ("val", 1)]
