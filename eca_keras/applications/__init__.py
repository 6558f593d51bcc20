"""keras.applications-style constructors for the ECA-Net models.

>>> from eca_keras.applications import ECAResNet50, preprocess_input, decode_predictions
>>> model = ECAResNet50(weights=None)
"""

from eca_keras.applications.imagenet_utils import decode_predictions, preprocess_input
from eca_keras.applications.mobilenet_v2 import ECAMobileNetV2
from eca_keras.applications.registry import get_model, list_models, model_info
from eca_keras.applications.resnet import (
    ECAResNet18,
    ECAResNet26T,
    ECAResNet34,
    ECAResNet50,
    ECAResNet50D,
    ECAResNet50T,
    ECAResNet101,
    ECAResNet101D,
    ECAResNet152,
    ECAResNet269D,
    ECAResNetLight,
)

__all__ = [
    "ECAMobileNetV2",
    "ECAResNet18",
    "ECAResNet26T",
    "ECAResNet34",
    "ECAResNet50",
    "ECAResNet50D",
    "ECAResNet50T",
    "ECAResNet101",
    "ECAResNet101D",
    "ECAResNet152",
    "ECAResNet269D",
    "ECAResNetLight",
    "decode_predictions",
    "get_model",
    "list_models",
    "model_info",
    "preprocess_input",
]
