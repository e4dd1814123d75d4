# third level: resnet18_finetune -> resnet18_imagenet -> _base_/*
_base_ = "resnet18_imagenet.py"
model = dict(pretrained=True)
lr_config = dict(step=[10])
runner = dict(max_epochs=20)
