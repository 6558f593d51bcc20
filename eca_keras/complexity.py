"""Multiply-accumulates (MACs) of a Keras model, counted layer by layer from its shapes.

Counted, per image: convolutions (grouped included), depthwise convolutions, dense layers and
ECA's channel convolution (``C * k``). Not counted: pooling, normalisation, activations,
additions, rescaling by the ECA gates. This is what PyTorch's ``FlopCounterMode`` counts (at two
FLOPs per MAC) and what the ECA-Net paper's table reports as "FLOPs" in units of 2^30 (3.86 for
ECA-Net50).
"""

import math

import keras

from eca_keras.layers import ECA


def count_macs(model):
    """The model's multiply-accumulates for one image (its input shape must be fully known)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_macs(layer)
        else:
            total += layer_macs(layer)
    return total


def layer_macs(layer):
    """MACs of one layer for one image (0 for the layers not counted)."""
    if isinstance(layer, ECA):
        return layer.channels * layer.kernel_size_
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel_h, kernel_w, channels, multiplier = layer.kernel.shape
        return _output_positions(layer) * channels * multiplier * kernel_h * kernel_w
    if isinstance(layer, keras.layers.Conv2D):
        kernel_h, kernel_w, inputs_per_group, filters = layer.kernel.shape
        return _output_positions(layer) * filters * kernel_h * kernel_w * inputs_per_group
    if isinstance(layer, keras.layers.Dense):
        inputs, units = layer.kernel.shape
        positions = math.prod(int(d) for d in layer.output.shape[1:-1])
        return positions * inputs * units
    return 0


def _output_positions(layer):
    shape = layer.output.shape
    spatial = shape[1:3] if layer.data_format == "channels_last" else shape[2:4]
    return int(spatial[0]) * int(spatial[1])
