"""ECA models the keras-hub way: backbones, an image classifier, presets and publishing.

Importing this package registers :class:`ECABackbone`, :class:`ECAImageConverter`,
:class:`ECAImageClassifierPreprocessor` and :class:`ECAImageClassifier` with Keras under
``eca_keras>`` (a name published presets carry forever). ``import eca_keras`` does it by itself as
soon as ``keras_hub`` is imported, so ``keras_hub.models.ImageClassifier.from_preset(folder)``
finds them. Needs ``keras-hub`` (``pip install 'eca-keras[hub]'``).
"""

from eca_keras.hub.backbone import ECABackbone
from eca_keras.hub.classifier import ECAImageClassifier, ECAImageClassifierPreprocessor
from eca_keras.hub.image_converter import ECAImageConverter
from eca_keras.hub.presets import preset_names
from eca_keras.hub.publish import publish

__all__ = [
    "ECABackbone",
    "ECAImageClassifier",
    "ECAImageClassifierPreprocessor",
    "ECAImageConverter",
    "preset_names",
    "publish",
]
