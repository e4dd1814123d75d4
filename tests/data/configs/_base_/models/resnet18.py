model = dict(
    type="TimmClassifier",
    model_name="resnet18",
    pretrained=False,
    num_classes=1000,
    loss=dict(type="CrossEntropyLoss", label_smoothing=0.0),
)
