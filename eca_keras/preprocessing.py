"""Image preprocessing, in one place: the ImageNet mean/std, the evaluation transform, reading.

An :class:`EvalConfig` says how a model's published accuracy was measured: resize the short side
to ``floor(input_size / crop_pct)`` keeping the aspect ratio (torchvision's ``Resize(int)``),
center crop ``input_size``, then normalise ``(x / 255 - mean) / std`` per channel. Every field is
used: :func:`eval_transform` crops, :func:`normalize` normalises, and an exported model carries
both. TensorFlow's antialiased resize stands in for PIL's, so accuracies can differ from PyTorch's
in the last decimal.

Importing this module does not import TensorFlow (the registry's rows are ``EvalConfig`` values).
"""

import dataclasses
import math

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How a model's images are prepared for evaluation (see the module docstring)."""

    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def __post_init__(self):
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int):
            raise ValueError(f"input_size must be an integer; received {self.input_size!r}")
        if self.input_size < 1:
            raise ValueError(f"input_size must be positive; received {self.input_size}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1]; received {self.crop_pct!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATIONS}; received {self.interpolation!r}"
            )
        for field, value in (("mean", self.mean), ("std", self.std)):
            if len(tuple(value)) != 3:
                raise ValueError(f"{field} needs 3 values (R, G, B); received {value!r}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive; received {self.std}")

    @property
    def resize_size(self):
        """The short side before the center crop."""
        return math.floor(self.input_size / self.crop_pct)

    def resized(self, input_size):
        """The same transform at another input size (the crop fraction is kept)."""
        return dataclasses.replace(self, input_size=int(input_size))

    def to_dict(self):
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values):
        """An ``EvalConfig`` from a dict (a sidecar, a run's config); unknown keys are ignored."""
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in dict(values).items() if key in fields})


def normalize(x, mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_axis=-1):
    """``(x / 255 - mean) / std`` per channel, for RGB pixels in ``[0, 255]``.

    A NumPy array gives a new float32 array; a tensor (any Keras backend) gives a tensor.
    """
    import numpy as np

    rank = len(x.shape)
    shape = [1] * rank
    shape[channel_axis] = 3
    offset = np.reshape(np.asarray(mean, "float32") * 255.0, shape)
    scale = np.reshape(np.asarray(std, "float32") * 255.0, shape)
    if isinstance(x, np.ndarray):
        return (x.astype("float32") - offset) / scale
    from keras import ops

    x = ops.cast(x, "float32")
    return (x - ops.convert_to_tensor(offset)) / ops.convert_to_tensor(scale)


def eval_transform(image, config):
    """Resize the short side, center crop: ``image`` is a uint8/float RGB tensor ``(H, W, 3)``;
    returns float32 RGB in ``[0, 255]`` of shape ``(input_size, input_size, 3)``."""
    import tensorflow as tf

    size = config.input_size
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    short = tf.minimum(height, width)
    new_height = tf.cast(tf.math.floor(config.resize_size * height / short), tf.int32)
    new_width = tf.cast(tf.math.floor(config.resize_size * width / short), tf.int32)
    new_height = tf.maximum(new_height, size)
    new_width = tf.maximum(new_width, size)
    image = tf.image.resize(
        image, (new_height, new_width), method=config.interpolation, antialias=True
    )
    top = (new_height - size) // 2
    left = (new_width - size) // 2
    image = image[top : top + size, left : left + size]
    image = tf.ensure_shape(image, (size, size, 3))
    return tf.clip_by_value(image, 0.0, 255.0)


def eval_pixels(image, config):
    """:func:`eval_transform` rounded to uint8: the pixels a camera pipeline hands an exported
    model (whose normalisation is inside it)."""
    import tensorflow as tf

    return tf.cast(tf.round(eval_transform(image, config)), tf.uint8)


class ImageReadError(ValueError):
    """A file that should hold an image cannot be read as one."""


def read_image(path):
    """Decodes an image file (JPEG, PNG, GIF, BMP) to a uint8 RGB tensor ``(H, W, 3)``; works
    inside ``tf.data`` pipelines (``path`` a string tensor)."""
    import tensorflow as tf

    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def load_image(path):
    """Reads one image file eagerly; a missing, empty or undecodable file raises
    :class:`ImageReadError` (or ``FileNotFoundError``) naming it in one line."""
    import os

    import tensorflow as tf

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such image file: {path}")
    if os.path.getsize(path) == 0:
        raise ImageReadError(f"{path}: the file is empty, not an image")
    try:
        return read_image(path)
    except tf.errors.OpError as error:
        reason = error.message.strip().splitlines()[0] if error.message else type(error).__name__
        raise ImageReadError(
            f"{path}: not a readable image (JPEG, PNG, GIF or BMP): {reason}"
        ) from None
