model = dict(
    type="TimmClassifier",
    model_name="resnet50",
    num_classes=1000,
    pretrained=False,
    loss=dict(type="CrossEntropyLoss", label_smoothing=0.1),
)
