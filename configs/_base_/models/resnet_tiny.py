# timm's resnet10t: small enough for CPU demos on 32 px images
model = dict(
    type="TimmClassifier",
    model_name="resnet10t",
    num_classes=4,
    pretrained=False,
    loss=dict(type="CrossEntropyLoss"),
)
