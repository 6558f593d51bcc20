"""ImageNet pre/post-processing and the argument validation shared by every constructor.

The validation follows ``keras.applications`` so that the constructors raise the same errors as
``keras.applications.ResNet50`` for the same bad arguments.
"""

import functools
import os
import warnings
from importlib import resources

import keras
import numpy as np
from keras import ops

from eca_keras.preprocessing import IMAGENET_MEAN, IMAGENET_STD, normalize

NUM_CLASSES = 1000


def preprocess_input(x, data_format=None):
    """Prepares RGB images in ``[0, 255]`` the way the ECA-Net weights were trained.

    ``x / 255``, then per channel ``(x - mean) / std`` with the ImageNet mean
    ``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)`` (``keras.applications``' "torch"
    mode). Accepts a NumPy array (returns a new float32 array, the input is not modified) or a
    tensor (returns a tensor), of any rank with channels on the last axis, or on axis 1 for
    ``data_format="channels_first"`` with rank 4 (rank 3 for a single image).
    """
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "`data_format` should be 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format}"
        )
    rank = len(x.shape)
    channel_axis = -1 if data_format == "channels_last" else (0 if rank == 3 else 1)
    if x.shape[channel_axis] not in (3, None):  # None: a symbolic shape, checked downstream
        raise ValueError(
            f"`preprocess_input` expects 3 RGB channels on axis {channel_axis}. "
            f"Received an input of shape {tuple(x.shape)} with data_format={data_format}."
        )
    return normalize(x, IMAGENET_MEAN, IMAGENET_STD, channel_axis)


@functools.lru_cache(maxsize=1)
def imagenet_classes():
    """The 1000 ImageNet-1k classes in training index order: ``[(wnid, description), ...]``.

    The list ships inside this package (taken from the label files that TensorFlow Datasets
    ships: ``imagenet2012/labels.txt`` for the WordNet ids, in the sorted-folder order that
    PyTorch's ImageFolder and TFDS share), so it works without a network.
    """
    text = resources.files(__package__).joinpath("data/imagenet_classes.tsv").read_text("utf-8")
    return tuple(tuple(line.split("\t", 1)) for line in text.splitlines() if line)


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions into ``[(wnid, name, score), ...]`` per sample, best first.

    Same contract as ``keras.applications.imagenet_utils.decode_predictions`` (``name`` is the
    class's first synonym, e.g. ``"tench"``), but works offline.
    """
    preds = np.asarray(ops.convert_to_numpy(preds))
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions "
            "(i.e. a 2D array of shape (samples, 1000)). "
            f"Received array with shape: {preds.shape}"
        )
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"`top` must be a positive integer. Received: top={top!r}")
    classes = imagenet_classes()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(classes[i][0], classes[i][1].split(",")[0], float(row[i])) for i in best])
    return results


def validate_weights_argument(weights, include_top, classes):
    """keras.applications' checks of ``weights`` and ``classes``."""
    is_file = isinstance(weights, str | os.PathLike) and os.path.exists(weights)
    if not (is_file or weights in {"imagenet", None}):
        raise ValueError(
            "The `weights` argument should be either "
            "`None` (random initialization), 'imagenet' "
            "(pre-training on ImageNet), "
            "or the path to the weights file to be loaded.  Received: "
            f"weights={weights}"
        )
    if weights == "imagenet" and include_top and classes != NUM_CLASSES:
        raise ValueError(
            "If using `weights='imagenet'` with `include_top=True`, "
            "`classes` should be 1000.  "
            f"Received classes={classes}"
        )


def validate_activation(classifier_activation, weights):
    """Only ``None`` or ``"softmax"`` on top of pretrained weights, as in keras.applications."""
    if weights is None:
        return
    activation = keras.activations.get(classifier_activation)
    if activation not in {keras.activations.get("softmax"), keras.activations.get(None)}:
        raise ValueError(
            "Only `None` and `softmax` activations are allowed "
            "for the `classifier_activation` argument when using "
            "pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={classifier_activation}"
        )


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten, weights):
    """Computes and validates the input shape, with keras.applications' rules and messages."""
    channels_first = data_format == "channels_first"
    if input_shape is not None:
        input_shape = tuple(input_shape)
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        channels = input_shape[0] if channels_first else input_shape[-1]
        if channels not in {1, 3}:
            warnings.warn(
                "This model usually expects 1 or 3 input channels. "
                f"However, it was passed an input_shape with {channels} input channels.",
                stacklevel=3,
            )
        default_shape = (
            (channels, default_size, default_size)
            if channels_first
            else (default_size, default_size, channels)
        )
    else:
        default_shape = (
            (3, default_size, default_size)
            if channels_first
            else (
                default_size,
                default_size,
                3,
            )
        )
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError(
                "When setting `include_top=True` "
                "and loading `imagenet` weights, "
                f"`input_shape` should be {default_shape}.  "
                f"Received: input_shape={input_shape}"
            )
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        channels = input_shape[0] if channels_first else input_shape[-1]
        rows, cols = input_shape[1:] if channels_first else input_shape[:2]
        if channels != 3 and weights == "imagenet":
            raise ValueError(
                f"The input must have 3 channels; Received `input_shape={input_shape}`"
            )
        if (rows is not None and rows < min_size) or (cols is not None and cols < min_size):
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size}; "
                f"Received: input_shape={input_shape}"
            )
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (3, None, None) if channels_first else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError(
            "If `include_top` is True, "
            "you should specify a static `input_shape`. "
            f"Received: input_shape={input_shape}"
        )
    return input_shape
