"""keras.applications-style constructors for the ECA-Net models, and the model registry.

>>> from eca_keras.applications import ECAResNet50, preprocess_input, decode_predictions
>>> model = ECAResNet50(weights=None)

Importing this package registers every model family (their rows and constructors need neither
Keras nor TensorFlow until a model is built); ``preprocess_input`` and ``decode_predictions``
load on first use.
"""

from eca_keras import lazy
from eca_keras.applications.mobilenet_v2 import *  # noqa: F403 (the families' constructors)
from eca_keras.applications.registry import get_model, list_models, model_info
from eca_keras.applications.resnet import *  # noqa: F403

# isort: split
# timm's other families register after the ResNets: list_models() names the official ones first.
from eca_keras.applications.byob import *  # noqa: F403
from eca_keras.applications.nfnet import *  # noqa: F403

_LAZY = {
    "decode_predictions": "eca_keras.applications.imagenet_utils",
    "preprocess_input": "eca_keras.applications.imagenet_utils",
}


__getattr__ = lazy.attributes(__name__, _LAZY)


def _constructors():
    return sorted(model_info(name).constructor.__name__ for name in list_models())


__all__ = [*_constructors(), *_LAZY, "get_model", "list_models", "model_info"]
