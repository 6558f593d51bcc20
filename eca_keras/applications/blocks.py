"""The layers every family is made of: ``[pad] -> conv -> BN [-> activation]`` with PyTorch's
padding and initialisation, and a block's last ``conv -> BN -> ECA`` with the BatchNorm folded
into the gate."""

import keras
from keras import layers

from eca_keras.layers import ECA, DescriptorBatchNormalization, PointwiseConv2D

BN_EPSILON = 1e-5  # PyTorch's BatchNorm default; the released statistics assume it.
BN_MOMENTUM = 0.9  # PyTorch's momentum=0.1 in Keras' convention.


def conv_initializer():
    """PyTorch's (torchvision's) convolution initialisation, so that training from scratch starts
    where the paper did. A new instance per layer: an unseeded Keras initializer draws its seed
    once, so a shared instance would give equal-shaped layers equal kernels and ignore
    ``keras.utils.set_random_seed``."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def channel_axis():
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def conv(filters, kernel_size, strides, padding, name, depthwise=False, cls=layers.Conv2D):
    """A bias-free ``cls`` (a ``Conv2D``), or ``DepthwiseConv2D``, with :func:`conv_initializer`."""
    if depthwise:
        cls, arguments = layers.DepthwiseConv2D, {"depthwise_initializer": conv_initializer()}
    else:
        arguments = {"filters": filters, "kernel_initializer": conv_initializer()}
    return cls(
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        name=name,
        **arguments,
    )


def batch_norm(name, cls=layers.BatchNormalization):
    return cls(axis=channel_axis(), epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def conv_bn(x, filters, kernel_size, strides, name, activation="relu", depthwise=False):
    """``[pad] -> conv -> BN [-> activation]`` with PyTorch's symmetric padding.

    Layers are named ``{name}_pad``, ``{name}_conv``, ``{name}_bn``, ``{name}_relu``. Strided
    convolutions pad ``kernel_size // 2`` on every side explicitly (Keras' "same" would pad only
    bottom/right); unstrided odd kernels use "same", which is already symmetric.
    """
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = conv(filters, kernel_size, strides, padding, f"{name}_conv", depthwise)(x)
    x = batch_norm(f"{name}_bn")(x)
    if activation == "relu":
        x = layers.ReLU(name=f"{name}_relu")(x)
    elif activation == "relu6":
        x = layers.ReLU(6.0, name=f"{name}_relu")(x)
    return x


def conv_bn_eca(x, filters, kernel_size, name, eca_kernel_size, eca_name):
    """A block's last ``conv (stride 1) -> BN``, then ECA, with the BatchNorm folded into it.

    Layers as :func:`conv_bn` (no activation; the BatchNormalization is a
    :class:`~eca_keras.layers.DescriptorBatchNormalization`), then ``ECA`` named ``eca_name``
    and the pooling ``{eca_name}_pool``. The BatchNorm hands ECA its affine form (scale and
    offset per channel, from the batch statistics in training) and ECA computes
    ``conv * (scale * g) + offset * g``: the normalised tensor is never written, and the
    gate's multiply is the BatchNorm's own. Its channel descriptor is the mean of the
    convolution's output, or the convolution of the mean of its input where that is the smaller
    read (the mean of a pointwise convolution's output is the convolution of the mean of its
    input; the bottlenecks' early stages): exact in every mode.
    """
    narrow_descriptor = kernel_size == 1 and _narrower(x, filters)
    cls = PointwiseConv2D if narrow_descriptor else layers.Conv2D
    convolution = conv(filters, kernel_size, 1, "same", f"{name}_conv", cls=cls)
    convolved = convolution(x)
    pool = layers.GlobalAveragePooling2D(keepdims=True, name=f"{eca_name}_pool")
    if narrow_descriptor:
        pooled = convolution(pool(x))  # PointwiseConv2D: a matrix product on the 1x1 image
    else:
        pooled = pool(convolved)
    normalization = batch_norm(f"{name}_bn", DescriptorBatchNormalization)
    affine = normalization(convolved, affine=True)
    return ECA(eca_kernel_size, name=eca_name)(convolved, descriptor=pooled, affine=affine)


# What reading a float of a pointwise convolution's weights costs in the pooled image's matrix
# product, against a float the pooling streams: a batch-1 product reads its weights once per
# image, and under XLA at ~1/4 of a reduction's rate (ecaresnet269d at 320 px, per-kernel times:
# 56 MB of weights in 23.4 ms, 50 MB of pooled maps in 5.1 ms). With 1 instead, its stage 3 took
# the narrow path and ran 0.954 of its plain twin under XLA at batch 1; with 4, 0.986.
WEIGHT_READ_COST = 4


def _narrower(x, filters):
    """Whether pooling a pointwise convolution's input (then convolving it) costs less than
    pooling its output, per image: ``C_in * HW + WEIGHT_READ_COST * C_in * C_out < C_out * HW``."""
    if channel_axis() == -1:
        height, width, channels = x.shape[1:]
    else:
        channels, height, width = x.shape[1:]
    if None in (height, width, channels):
        return False
    positions = height * width
    return channels * positions + WEIGHT_READ_COST * channels * filters < filters * positions
