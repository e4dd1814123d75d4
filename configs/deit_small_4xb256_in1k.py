# DeiT-S (deit_small_patch16_224) on ImageNet-1k, DeiT's recipe (Touvron et al. 2021,
# facebookresearch/deit main.py defaults, as timm train.py arguments):
#   --opt adamw --lr 5e-4 (x batch / 512) --weight-decay 0.05 --sched cosine
#   --warmup-epochs 5 --warmup-lr 1e-6 --min-lr 1e-5 --epochs 300 --drop-path 0.1
#   --mixup 0.8 --cutmix 1.0 --smoothing 0.1 --aa rand-m9-mstd0.5-inc1 --reprob 0.25
#   --repeated-aug (3 copies) --model-ema --model-ema-decay 0.99996
# 4 GPUs x 256 = 1024 images per step, so lr = 1e-3; on any other number of processes
# lr_base rescales it for that global batch (docs/recipes.md#lr-scaling):
#   accelerate launch --config_file launch/multi_gpu.yaml --num_processes 4 \
#       train.py --config configs/deit_small_4xb256_in1k.py
_base_ = ["_base_/default_runtime.py"]

model = dict(
    type="TimmClassifier",
    model_name="deit_small_patch16_224",
    num_classes=1000,
    pretrained=False,
    drop_path_rate=0.1,
)  # no model.loss: mixup's soft targets go to timm's SoftTargetCrossEntropy

data = dict(
    samples_per_gpu=256,
    workers_per_gpu=8,
    train=dict(
        type="ImageFolder",
        root="data/imagenet/train",
        input_size=224,
        is_training=True,
        interpolation="bicubic",
        auto_augment="rand-m9-mstd0.5-inc1",  # RandAugment (timm's create_transform)
        re_prob=0.25,  # random erasing
        re_mode="pixel",
        re_count=1,
    ),
    val=dict(
        type="ImageFolder",
        root="data/imagenet/val",
        input_size=224,
        crop_pct=0.875,
        interpolation="bicubic",
    ),
    test=dict(
        type="ImageFolder",
        root="data/imagenet/val",
        input_size=224,
        crop_pct=0.875,
        interpolation="bicubic",
    ),
)
sampler = dict(type="RepeatAugSampler", num_repeats=3)  # repeated augmentation
mixup = dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1)

# timm's 'adamw': no weight decay on biases, norms, pos_embed and cls_token, as DeiT
optimizer = dict(
    type="adamw", lr_base=5e-4, lr_base_size=512, lr_base_scale="linear", weight_decay=0.05
)
optimizer_config = dict(grad_clip=None)
# cosine per step to 1e-5 after 5 warmup epochs from 1e-6 (ratios of DeiT's lr 1e-3 at
# batch 1024, so the curve keeps its shape under any LR scaling)
lr_config = dict(
    policy="CosineAnnealing",
    by_epoch=False,
    min_lr_ratio=1e-2,
    warmup="linear",
    warmup_iters=5,
    warmup_by_epoch=True,
    warmup_ratio=1e-3,
)
runner = dict(type="EpochBasedRunner", max_epochs=300)

# DeiT's model EMA (decay 0.99996, no warm-up); DeiT reports the trained weights, so
# evaluation uses them; the EMA is saved in every checkpoint (`acchooks test --weights ema`)
custom_hooks = [
    dict(
        type="EMAHook",
        decay=0.99996,
        interval=1,
        warm_up=0,
        evaluate_with_ema=False,
        priority="ABOVE_NORMAL",
    )
]
accelerator = dict(mixed_precision="bf16")
evaluation = dict(interval=1, save_best="auto", metric="accuracy", metric_options={"topk": (1, 5)})
checkpoint_config = dict(interval=1, max_keep_ckpts=3)
log_config = dict(
    interval=100, hooks=[dict(type="TextLoggerHook"), dict(type="TensorboardLoggerHook")]
)
seed = 0
