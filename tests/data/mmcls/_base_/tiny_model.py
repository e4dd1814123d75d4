model = dict(type="TimmClassifier", model_name="test_resnet", num_classes=4, pretrained=False)
