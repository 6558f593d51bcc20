"""The evaluation transform the published accuracies were measured with (graph-compatible).

Resize the short side to ``floor(input_size / crop_pct)`` keeping the aspect ratio (torchvision's
``Resize(int)``), center crop ``input_size``, leave RGB in ``[0, 255]`` for ``preprocess_input``.
TensorFlow's antialiased resize stands in for PIL's, so accuracies can differ from PyTorch's in
the last decimal.
"""

import math


def eval_transform(image, config):
    """``image``: uint8/float RGB tensor ``(H, W, 3)``; ``config``: an ``EvalConfig``."""
    import tensorflow as tf

    scale_size = math.floor(config.input_size / config.crop_pct)
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    short = tf.minimum(height, width)
    new_height = tf.cast(tf.math.floor(scale_size * height / short), tf.int32)
    new_width = tf.cast(tf.math.floor(scale_size * width / short), tf.int32)
    new_height = tf.maximum(new_height, config.input_size)
    new_width = tf.maximum(new_width, config.input_size)
    image = tf.image.resize(
        image, (new_height, new_width), method=config.interpolation, antialias=True
    )
    top = (new_height - config.input_size) // 2
    left = (new_width - config.input_size) // 2
    image = image[top : top + config.input_size, left : left + config.input_size]
    image = tf.ensure_shape(image, (config.input_size, config.input_size, 3))
    return tf.clip_by_value(image, 0.0, 255.0)


def read_image(path):
    """Decodes an image file (JPEG, PNG, GIF, BMP) to a uint8 RGB tensor."""
    import tensorflow as tf

    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
