# Quickstart: learn the generated Shapes data on CPU in about a minute.
#   python train.py --config configs/quickstart.py
_base_ = ['_base_/models/resnet_tiny.py', '_base_/datasets/shapes.py', '_base_/default_runtime.py']

optimizer = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)
optimizer_config = dict(grad_clip=dict(max_norm=10.0))
lr_config = dict(policy='step', step=[4], gamma=0.1, warmup='linear', warmup_iters=20,
                 warmup_ratio=0.1)
runner = dict(type='EpochBasedRunner', max_epochs=5)
workflow = [('train', 1), ('val', 1)]
evaluation = dict(interval=1, save_best='auto', metric='accuracy', metric_options={'topk': (1, )})
checkpoint_config = dict(interval=1, max_keep_ckpts=2)
log_config = dict(interval=20, hooks=[dict(type='TextLoggerHook'), dict(type='TensorboardLoggerHook')])
seed = 0
