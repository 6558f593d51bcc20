"""Multiply-accumulates (MACs) of a Keras model, counted layer by layer from its shapes.

Counted, per image: convolutions (grouped included), depthwise convolutions, dense layers, ECA's
channel convolution (``C * k``), and self-attention's projections and matrix products (queries
times keys, attention times values, queries times the relative position embeddings, as timm
computes them). Not counted: pooling, normalisation, activations, softmax, additions, rescaling
by the ECA gates. This is what PyTorch's ``FlopCounterMode`` counts (at two
FLOPs per MAC) and what the ECA-Net paper's table reports as "FLOPs" in units of 2^30 (3.86 for
ECA-Net50).
"""

import math

import keras

from eca_keras.layers import ECA, BottleneckAttention, HaloAttention


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
    if isinstance(layer, BottleneckAttention):
        return _bottleneck_attention_macs(layer)
    if isinstance(layer, HaloAttention):
        return _halo_attention_macs(layer)
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


def _bottleneck_attention_macs(layer):
    """The qkv projection, then per head ``q k^T`` and ``attn v`` over all position pairs, and
    the relative logits: each query against ``2 * size - 1`` embeddings per axis."""
    positions = layer.size * layer.size
    heads, key_dim, value_dim = layer.num_heads, layer.key_dim_, layer.value_dim
    projection = positions * layer.channels * heads * (2 * key_dim + value_dim)
    products = heads * positions * positions * (key_dim + value_dim)
    relative = heads * positions * 2 * (2 * layer.size - 1) * key_dim
    return projection + products + relative


def _halo_attention_macs(layer):
    """The query (on the strided grid) and key/value projections, then per head and block
    ``q k^T`` and ``attn v`` against the window, and the relative logits: each query against
    ``2 * window - 1`` embeddings per axis."""
    shape = layer.input.shape
    height, width = shape[1:3] if layer.data_format == "channels_last" else shape[2:4]
    heads, key_dim, value_dim = layer.num_heads, layer.key_dim_, layer.value_dim
    queries = (height // layer.query_stride) * (width // layer.query_stride)
    keys = layer.window * layer.window
    projection = queries * layer.channels * heads * key_dim
    projection += height * width * layer.channels * heads * (key_dim + value_dim)
    products = heads * queries * keys * (key_dim + value_dim)
    relative = heads * queries * 2 * (2 * layer.window - 1) * key_dim
    return projection + products + relative
