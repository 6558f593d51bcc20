"""Image preprocessing, in one place: the ImageNet mean/std, the evaluation transform, reading.

An :class:`EvalConfig` says how a model's published accuracy was measured: resize the short side
to ``floor(input_size / crop_pct)`` keeping the aspect ratio (torchvision's ``Resize(int)``),
center crop ``input_size``, then normalise ``(x / 255 - mean) / std`` per channel. Every field is
used: :func:`eval_transform` crops, :func:`normalize` normalises, and an exported model carries
both. The resize reproduces PIL's (what torchvision and timm evaluate with) within 2 levels of 255.

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
    """Resize the short side, center crop, as torchvision does on PIL images: ``image`` is a
    uint8/float RGB tensor ``(H, W, 3)``; returns float32 RGB in ``[0, 255]`` of shape
    ``(input_size, input_size, 3)``.

    PIL's resampling is reproduced: two antialiased passes (width, then height; triangle filter
    for bilinear, Keys cubic a=-0.5 for bicubic), each result clipped and rounded to whole
    pixel values as PIL stores them, the long side ``floor(resize_size * long / short)``, and
    the crop offset ``round((side - input_size) / 2)`` rounded half to even (torchvision's
    ``CenterCrop``). Against PIL the values differ by at most 2 (in 0-255; rounding ties of
    the filter weights), most of them not at all (tests/test_evaluation.py measures it).
    """
    import tensorflow as tf

    size = config.input_size
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    # Integer arithmetic: floor(resize_size * side / short) exactly.
    new_height = config.resize_size * height // short
    new_width = config.resize_size * width // short
    x = tf.cast(image, tf.float32)
    # One 2-D resize would keep the first pass' overshoot, which PIL clips (bicubic: up to 23
    # levels apart). Resizing an axis to its own length is the identity.
    for target in ((height, new_width), (new_height, new_width)):
        x = tf.image.resize(x, tf.stack(target), method=config.interpolation, antialias=True)
        x = tf.floor(tf.clip_by_value(x, 0.0, 255.0) + 0.5)  # PIL rounds half up
    top = tf.cast(tf.round(tf.cast(new_height - size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_width - size, tf.float32) / 2.0), tf.int32)
    x = x[top : top + size, left : left + size]
    return tf.ensure_shape(x, (size, size, 3))


def eval_pixels(image, config):
    """:func:`eval_transform` rounded to uint8: the pixels a camera pipeline hands an exported
    model (whose normalisation is inside it)."""
    import tensorflow as tf

    return tf.cast(tf.round(eval_transform(image, config)), tf.uint8)


class ImageReadError(ValueError):
    """A file that should hold an image cannot be read as one."""


# The formats tf.io.decode_image reads, by their first bytes.
IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
)


def image_file_problem(path):
    """Why ``path`` cannot hold an image (missing, empty, not an image format), judged from its
    first bytes without decoding it; None when it looks like an image."""
    import os

    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not head:
        return "the file is empty"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return None
    if any(head.startswith(signature) for signature, _ in IMAGE_SIGNATURES):
        return None
    kind = os.path.splitext(os.fspath(path))[1] or "a file"
    return f"not an image ({kind} whose content is not JPEG, PNG, GIF, BMP or WebP)"


def tensorflow_reason(error):
    """The first line of a TensorFlow error without its op and device decorations."""
    import re

    message = (getattr(error, "message", None) or str(error)).strip()
    line = message.splitlines()[0] if message else type(error).__name__
    line = re.sub(r"\{\{[^}]*\}\}\s*", "", line)
    return re.sub(r"\s*\[Op:\w+\].*$", "", line).strip() or type(error).__name__


def read_image(path):
    """Decodes an image file (JPEG, PNG, GIF, BMP, WebP) to a uint8 RGB tensor ``(H, W, 3)``;
    works inside ``tf.data`` pipelines (``path`` a string tensor)."""
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
    problem = image_file_problem(path)
    if problem:
        raise ImageReadError(f"{path}: {problem}")
    try:
        return read_image(path)
    except tf.errors.OpError as error:
        raise ImageReadError(
            f"{path}: not a readable image (damaged or truncated?): {tensorflow_reason(error)}"
        ) from None
