"""keras-hub's RetinaNet and DeepLabV3 on an ECA backbone, and opening a trained one.

The heads are keras-hub's own (``RetinaNetBackbone`` + ``RetinaNetObjectDetector``,
``DeepLabV3Backbone`` + ``DeepLabV3ImageSegmenter``); the image encoder is an
:class:`eca_keras.hub.ECABackbone`, whose ``pyramid_outputs`` (``P1``..``P5``, Pn at stride 2^n)
they read. Both models carry a keras-hub preprocessor (resize with padding to the square input,
ImageNet mean/std), so ``predict`` takes RGB pixels in ``[0, 255]``, and both save as ``.keras``
files and as keras-hub presets (``save_to_preset``, ``from_preset``).
"""

import math
import os
import warnings

import keras
import keras_hub
import numpy as np

from eca_keras import runs
from eca_keras.applications import registry
from eca_keras.applications.weights import copy_weights_by_name
from eca_keras.hub import ECABackbone
from eca_keras.preprocessing import IMAGENET_MEAN, IMAGENET_STD

PRIOR_PROBABILITY = 0.01  # RetinaNet's initial foreground probability (focal loss paper)


def image_encoder(architecture, image_size, weights=None, attention=True, freeze=False):
    """An :class:`ECABackbone` of a registered ``architecture`` at ``image_size``; ``weights``
    (``"imagenet"``, a tag, a ``.weights.h5`` or upstream file) fill it, as ``get_model``
    loads them; ``freeze`` stops training it (its BatchNorm layers then run in inference mode)."""
    if not registry.is_registered(architecture):
        raise ValueError(
            f"Unknown backbone {architecture!r}; registered: {', '.join(registry.list_models())}"
        )
    shape = (image_size, image_size, 3)
    encoder = ECABackbone(architecture, image_shape=shape, attention=attention)
    if weights is not None:
        source = registry.get_model(
            architecture, weights=weights, include_top=False, input_shape=shape, attention=attention
        )
        copy_weights_by_name(source, encoder, f"{architecture} weights {weights!r}")
    if freeze:
        if weights is None:
            raise ValueError("freeze_backbone needs pretrained weights (--weights imagenet|FILE)")
        encoder.trainable = False
    return encoder


def _image_converter(converter_class, image_size):
    """keras-hub's image converter: pad to square, resize, ``(x / 255 - mean) / std``."""
    std, mean = np.asarray(IMAGENET_STD), np.asarray(IMAGENET_MEAN)
    return converter_class(
        image_size=(image_size, image_size),
        scale=[float(s) for s in 1.0 / (255.0 * std)],
        offset=[float(o) for o in -mean / std],
        crop_to_aspect_ratio=False,
        pad_to_aspect_ratio=True,
        bounding_box_format="xyxy",
    )


def build_detector(
    architecture,
    num_classes,
    image_size,
    weights=None,
    attention=True,
    freeze_backbone=False,
    min_level=3,
    max_level=5,
    head_convs=1,
    anchor_size=2.0,
    confidence_threshold=0.05,
    max_detections=100,
):
    """A ``keras_hub.models.RetinaNetObjectDetector`` on an ECA backbone.

    ``min_level``..``max_level``: the FPN levels the heads see (levels above P5 are made by the
    FPN); ``head_convs``: the 3x3 convolutions of each head before its logits (4 in the paper;
    fewer is faster); ``anchor_size``: anchor side in strides (3 scales, 3 aspect ratios per
    place). Boxes are ``x1, y1, x2, y2`` in input pixels; detections under
    ``confidence_threshold`` are dropped (0.05: COCO evaluation's usual setting).
    """
    encoder = image_encoder(architecture, image_size, weights, attention, freeze_backbone)
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=encoder,
        min_level=min_level,
        max_level=max_level,
        use_p5=False,
        image_shape=(image_size, image_size, 3),
    )
    anchors = keras_hub.layers.AnchorGenerator(
        "xyxy",
        min_level=min_level,
        max_level=max_level,
        num_scales=3,
        aspect_ratios=[0.5, 1.0, 2.0],
        anchor_size=anchor_size,
    )
    preprocessor = keras_hub.models.RetinaNetObjectDetectorPreprocessor(
        image_converter=_image_converter(keras_hub.layers.RetinaNetImageConverter, image_size)
    )
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone,
        num_classes=num_classes,
        bounding_box_format="xyxy",
        anchor_generator=anchors,
        pre_logits_num_conv_layers=head_convs,
        preprocessor=preprocessor,
        prediction_decoder=keras_hub.layers.NonMaxSuppression(
            bounding_box_format="xyxy",
            from_logits=True,
            confidence_threshold=confidence_threshold,
            max_detections=max_detections,
        ),
    )
    _set_prior(detector)
    return detector


def _set_prior(detector, seed=0):
    """RetinaNet's start (Lin et al. 2017, section 4.1): the heads' last convolutions
    N(0, 0.01), the box deltas' bias 0 and the class logits' bias the foreground prior
    (sigmoid = 0.01), so that every anchor starts as background with probability ~0.99.
    keras-hub 0.32 initialises them with ``VarianceScaling`` and gives the prior to the box head
    instead: training then starts with anchors scored up to ~0.5 and a focal loss ~30x too
    large for its first steps."""
    rng = np.random.default_rng(seed)
    prior = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
    for head, bias in ((detector.classification_head, prior), (detector.box_head, 0.0)):
        layer = head.prediction_layer
        layer.kernel.assign(rng.normal(0, 0.01, layer.kernel.shape).astype("float32"))
        layer.bias.assign(np.full(layer.bias.shape, bias, "float32"))


def dilation_rates(image_size):
    """DeepLab's atrous rates (6, 12, 18 at 512 px) scaled to the input (at least 1)."""
    return [max(1, round(rate * image_size / 512)) for rate in (6, 12, 18)]


def build_segmenter(
    architecture,
    num_classes,
    image_size,
    weights=None,
    attention=True,
    freeze_backbone=False,
    pooling_level="P4",
    low_level="P2",
):
    """A ``keras_hub.models.DeepLabV3ImageSegmenter`` (DeepLabV3+) on an ECA backbone.

    ``num_classes`` counts the background (class 0). The atrous spatial pyramid pooling reads
    ``pooling_level`` (P4: stride 16, DeepLab's usual output stride), the decoder
    ``low_level`` (P2: stride 4); the output is logits at the input size.
    """
    encoder = image_encoder(architecture, image_size, weights, attention, freeze_backbone)
    levels = encoder.pyramid_outputs
    for key in (pooling_level, low_level):
        if key not in levels:
            raise ValueError(f"{architecture} has no pyramid level {key} (it has {list(levels)})")
    # DeepLabV3Backbone runs every level of the pyramid it is given: only the two it reads, so
    # that the stages above the pooling level are not computed; they are not trained either.
    encoder.pyramid_outputs = {key: levels[key] for key in (low_level, pooling_level)}
    used = keras.Model(encoder.inputs, list(encoder.pyramid_outputs.values())).layers
    for layer in set(encoder.layers) - set(used):
        layer.trainable = False
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key=pooling_level,
        upsampling_size=2 ** (int(pooling_level[1:]) - int(low_level[1:])),
        dilation_rates=dilation_rates(image_size),
        low_level_feature_key=low_level,
        image_shape=(image_size, image_size, 3),
    )
    preprocessor = keras_hub.models.DeepLabV3ImageSegmenterPreprocessor(
        image_converter=_image_converter(keras_hub.layers.DeepLabV3ImageConverter, image_size)
    )
    return keras_hub.models.DeepLabV3ImageSegmenter(
        backbone=backbone, num_classes=num_classes, preprocessor=preprocessor
    )


TASK_CLASSES = {
    "detection": keras_hub.models.ObjectDetector,
    "segmentation": keras_hub.models.ImageSegmenter,
}


def open_task_model(reference, task):
    """``(model, run config)`` of a trained detector or segmenter: a run directory of
    ``eca-keras train --task ...`` (its ``best.keras``), a ``.keras`` file or a keras-hub
    preset directory."""
    reference = os.fspath(reference)
    expected = TASK_CLASSES[task]
    config = {}
    if runs.is_run_dir(reference):
        config = runs.read_config(reference)
        path = runs.model_file(reference)
    elif os.path.isfile(os.path.join(reference, "task.json")):
        model = expected.from_preset(reference)
        return model, config
    elif reference.endswith(".keras"):
        if not os.path.isfile(reference):
            raise FileNotFoundError(f"No such model file: {reference}")
        path = reference
        config = runs.read_config(runs.run_dir_of(path)) if runs.run_dir_of(path) else {}
    else:
        raise ValueError(
            f"{reference!r} is not a trained {task} model: pass the run directory of "
            f"`eca-keras train --task {task}`, its best.keras, or a keras-hub preset folder"
        )
    try:
        with warnings.catch_warnings():  # keras-hub tasks compile themselves with a fresh Adam
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model = keras.saving.load_model(path, compile=False)  # inference: no optimizer
    except Exception as error:  # zip, HDF5 and deserialisation errors alike
        raise ValueError(f"{path}: not a loadable Keras model ({type(error).__name__})") from None
    if not isinstance(model, expected):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a {task} model")
    return model, config


def input_size(model):
    """The square input size of a detector or segmenter."""
    return int(model.backbone.image_shape[0])
