# Written as MMClassification 0.x writes its configs (swin / twins / t2t / deit idioms)
_base_ = [
    "_base_/tiny_model.py",
    "_base_/tiny_data.py",
    "_base_/schedule.py",
    "_base_/default_runtime.py",
]
_deprecation_ = dict(
    expected="mmcls_style_new.py", reference="https://github.com/open-mmlab/mmclassification/pull/1"
)

checkpoint = "https://download.openmmlab.com/mmclassification/v0/x.pth"  # a helper variable
model = dict(init_cfg=None, pretrained=False, drop_rate=0.0)
unused_pretrained = checkpoint  # helper read by another helper
data_root = "data/imagenet/"
ann_file = data_root + "meta/train.txt"  # helpers reading helpers
data = dict(
    train=dict(num_samples=16),
    # a whole value taken from the merged bases
    test=dict(type="Shapes", num_samples=8, img_size=32, num_classes=4, seed=2),
)
pipeline = [
    dict(type="AutoAugment", policies={{_base_.policy_imagenet}}),
    {{_base_.img_norm_cfg.mean}},
]

paramwise_cfg = dict(_delete=True, norm_decay_mult=0.0, bias_decay_mult=0.0)
optimizer = dict(lr=5e-4 * 8 / 512, paramwise_cfg=paramwise_cfg)
lr_config = dict(
    _delete_=True,
    policy="CosineAnnealingCooldown",
    min_lr=1e-5,
    cool_down_time=1,
    cool_down_ratio=0.1,
    by_epoch=True,
    warmup_by_epoch=True,
    warmup="linear",
    warmup_iters=1,
    warmup_ratio=1e-6,
)
checkpoint_config = dict(
    interval=1, create_symlink=False, filename_tmpl="epoch_{}.pth", sync_buffer=True
)
evaluation = dict(
    interval=1, metric="accuracy", gpu_collect=True, tmpdir=None, broadcast_bn_buffer=True
)
fp16 = dict(loss_scale=512.0)
