"""Max pooling with PyTorch's symmetric padding, whatever the sign of the input."""

import keras
from keras import ops
from keras.saving import register_keras_serializable

from eca_keras.layers.eca import standardize_data_format


@register_keras_serializable(package="eca_keras")
class PaddedMaxPooling2D(keras.layers.Layer):
    """``torch.nn.MaxPool2d(pool_size, strides, padding)``: max pooling after ``padding`` rows and
    columns on every side that never win the max.

    Keras' ``"same"`` pooling pads bottom/right only (other windows than PyTorch's), and zero
    padding wins over negative inputs (SiLU's outputs go down to -0.28). Here the border repeats
    the edge rows and columns: every window that reaches into the padding also holds the edge it
    copies (``padding <= pool_size // 2``, PyTorch's own limit), so the result is PyTorch's exactly,
    and the layer lowers to slices, concatenations and a valid max pool (builtin TFLite ops).

    Args:
        pool_size: window side.
        strides: step; default ``pool_size``.
        padding: rows/columns added on every side, at most ``pool_size // 2``.
        data_format: ``"channels_last"`` or ``"channels_first"``; default Keras' image format.
    """

    def __init__(self, pool_size=3, strides=None, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= padding <= pool_size // 2:
            raise ValueError(
                "`padding` must be between 0 and pool_size // 2 (PyTorch's limit). "
                f"Received: pool_size={pool_size}, padding={padding}"
            )
        data_format = standardize_data_format(data_format)
        self.pool_size = int(pool_size)
        self.strides = int(strides or pool_size)
        self.padding = int(padding)
        self.data_format = data_format

    def call(self, inputs):
        x = inputs
        spatial_axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for axis in spatial_axes if self.padding else ():
            first, last = ([slice(None)] * 4 for _ in range(2))
            first[axis], last[axis] = slice(0, 1), slice(-1, None)
            repeat = self.padding
            x = ops.concatenate(
                [x[tuple(first)]] * repeat + [x] + [x[tuple(last)]] * repeat, axis=axis
            )
        return ops.max_pool(
            x, self.pool_size, self.strides, padding="valid", data_format=self.data_format
        )

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis in (1, 2) if self.data_format == "channels_last" else (2, 3):
            if shape[axis] is not None:
                padded = shape[axis] + 2 * self.padding
                shape[axis] = (padded - self.pool_size) // self.strides + 1
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
            }
        )
        return config
