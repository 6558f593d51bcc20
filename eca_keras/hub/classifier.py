"""``ECAImageClassifier`` and its preprocessor: keras-hub's image-classification task on an
:class:`~eca_keras.hub.backbone.ECABackbone`, returning logits (keras-hub's default)."""

import os
import tempfile

import keras
import keras_hub

from eca_keras import downloads
from eca_keras.applications import registry
from eca_keras.applications.weights import copy_weights_by_name
from eca_keras.hub import presets
from eca_keras.hub.backbone import ECABackbone
from eca_keras.hub.image_converter import ECAImageConverter


@keras.saving.register_keras_serializable(package="eca_keras")
class ECAImageClassifierPreprocessor(keras_hub.models.ImageClassifierPreprocessor):
    """Applies the :class:`ECAImageConverter` (the model's evaluation transform)."""

    backbone_cls = ECABackbone
    image_converter_cls = ECAImageConverter


@keras.saving.register_keras_serializable(package="eca_keras")
class ECAImageClassifier(keras_hub.models.ImageClassifier):
    """Global average pooling -> [Dropout] -> Dense on an ECA backbone; ``predict`` takes RGB
    pixels in ``[0, 255]`` of any size and returns logits.

    ``from_preset`` also takes the name of any registered weight
    (:func:`eca_keras.hub.presets.preset_names`: ``"eca_resnet50_imagenet"``,
    ``"ecaresnet50d_miil_in1k"``...): the preset is built once from the upstream checkpoint and
    cached.
    """

    backbone_cls = ECABackbone
    preprocessor_cls = ECAImageClassifierPreprocessor

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """keras-hub's ``from_preset`` (a folder, ``hf://``, ``kaggle://``), and the name of any
        registered weight (:func:`eca_keras.hub.presets.preset_names`)."""
        if preset in presets.preset_names():
            preset = presets.cached_preset(preset) or cls._build_registered(preset)
        return super().from_preset(preset, load_weights, **kwargs)

    @classmethod
    def from_keras_model(cls, network, architecture, eval_config, num_classes=None):
        """The classifier of a keras.applications-style ``network`` of registered model
        ``architecture`` (a ``predictions`` head returning logits), its weights copied layer by
        layer, with ``eval_config``'s image converter."""
        from eca_keras.layers import ECA

        info = registry.model_info(architecture)
        options = {}
        if info.family == "mobilenet_v2":
            options["alpha"] = network.get_layer("conv1_conv").filters / 32
        attention = any(isinstance(layer, ECA) for layer in network.layers)
        backbone = ECABackbone(architecture, attention=attention, **options)
        converter = ECAImageConverter.from_eval_config(eval_config)
        head = network.get_layer("predictions")
        classifier = cls(
            backbone=backbone,
            num_classes=num_classes or head.units,
            preprocessor=ECAImageClassifierPreprocessor(image_converter=converter),
            dropout=info.head_dropout,
        )
        copy_weights_by_name(network, backbone, f"the {architecture} network")
        classifier.output_dense.set_weights(head.get_weights())
        return classifier

    @classmethod
    def _build_registered(cls, name):
        """Builds preset ``name`` from its upstream checkpoint into the cache; its folder."""
        from eca_keras.models import imagenet_class_names

        entry = presets.preset_names()[name]
        network = registry.get_model(entry.model, weights=entry.tag, classifier_activation=None)
        classifier = cls.from_keras_model(network, entry.model, entry.eval)
        folder = presets.preset_dir(name)
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        with tempfile.TemporaryDirectory(dir=os.path.dirname(folder), prefix=".preset-") as work:
            staged = os.path.join(work, name)
            classifier.save_to_preset(staged)
            presets.write_info(
                staged,
                {
                    "architecture": entry.model,
                    "num_classes": 1000,
                    "class_names": imagenet_class_names(),
                    "eval": entry.eval.to_dict(),
                    "checkpoint": {"weights": entry.name},
                    "license": entry.license,
                },
            )
            downloads.write_manifest(staged)
            if os.path.isdir(folder):
                os.replace(folder, os.path.join(work, "replaced"))
            os.replace(staged, folder)
        return folder
