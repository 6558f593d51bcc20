"""A pointwise convolution that convolves a pooled (1x1) image as one matrix product."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="eca_keras", name="PointwiseConv2D")
class PointwiseConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a 1x1 kernel which, called on a 1x1 image, runs as one
    matrix product.

    The ECA bottlenecks call a block's last pointwise convolution twice: on the feature map, and
    on its pooled input to get the channel descriptor (``applications.blocks.conv_bn_eca``).
    A convolution op on a 1x1 image costs a oneDNN convolution call (30-150 us per layer on a
    CPU, with its weight reordering) where a matrix product costs a few microseconds; XLA
    compiles both to the same dot. Same weights, same function, same config as ``Conv2D``.

    Its class ``__name__`` is ``"Conv2D"``: Keras names a layer's entry in a ``.weights.h5`` file
    after its class, so weight files stay interchangeable with models whose layer is a plain
    ``Conv2D`` (built before 0.3.2, or without a known input size). It is registered, and
    saved in ``.keras`` configs, as ``eca_keras>PointwiseConv2D``.
    """

    def convolution_op(self, inputs, kernel):
        if not self._on_one_pixel(inputs):
            return super().convolution_op(inputs, kernel)
        in_channels = kernel.shape[-2]
        products = ops.matmul(
            ops.reshape(inputs, (-1, in_channels)), ops.reshape(kernel, (in_channels, self.filters))
        )
        if self.data_format == "channels_last":
            return ops.reshape(products, (-1, 1, 1, self.filters))
        return ops.reshape(products, (-1, self.filters, 1, 1))

    def _on_one_pixel(self, inputs):
        """Whether this call is a matrix product: a 1x1 kernel, one group, a 1x1 image."""
        spatial = inputs.shape[1:3] if self.data_format == "channels_last" else inputs.shape[2:4]
        return tuple(self.kernel_size) == (1, 1) and self.groups == 1 and tuple(spatial) == (1, 1)


PointwiseConv2D.__name__ = "Conv2D"  # see the docstring: the weights files' layer paths
