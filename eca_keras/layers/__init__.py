"""Keras layers of this package, registered for ``.keras`` files under ``eca_keras>``.

- :class:`ECA` (:mod:`~eca_keras.layers.eca`): Efficient Channel Attention, and
  :func:`eca_kernel_size`, the paper's adaptive kernel size.
- :class:`DescriptorBatchNormalization` (:mod:`~eca_keras.layers.normalization`): the
  BatchNormalization that hands ECA a cheaper channel descriptor.
- :class:`ScaledStdConv2D` (:mod:`~eca_keras.layers.conv`): convolution with scaled weight
  standardisation (the NFNets').
- :class:`ScaledActivation`, :class:`ScaledResidual` (:mod:`~eca_keras.layers.scaling`): the
  constant scalings of normalisation-free residual blocks.
- :class:`BottleneckAttention`, :class:`HaloAttention` (:mod:`~eca_keras.layers.attention`):
  self-attention over feature maps with relative position logits (timm's hybrids).
- :class:`PaddedMaxPooling2D` (:mod:`~eca_keras.layers.pooling`): PyTorch's symmetric max pooling.
- :class:`ResidualReLU` (:mod:`~eca_keras.layers.activation`): the ReLU after a residual add,
  which XLA computes once per block.
- :class:`PointwiseConv2D` (:mod:`~eca_keras.layers.pointwise`): a 1x1 convolution that runs
  on a pooled (1x1) image as one matrix product.
"""

from eca_keras.layers.activation import ResidualReLU
from eca_keras.layers.attention import BottleneckAttention, HaloAttention
from eca_keras.layers.conv import ScaledStdConv2D
from eca_keras.layers.eca import ECA, compiled_by_xla, eca_kernel_size
from eca_keras.layers.normalization import DescriptorBatchNormalization
from eca_keras.layers.pointwise import PointwiseConv2D
from eca_keras.layers.pooling import PaddedMaxPooling2D
from eca_keras.layers.scaling import ScaledActivation, ScaledResidual

__all__ = [
    "ECA",
    "BottleneckAttention",
    "DescriptorBatchNormalization",
    "HaloAttention",
    "PaddedMaxPooling2D",
    "PointwiseConv2D",
    "ResidualReLU",
    "ScaledActivation",
    "ScaledResidual",
    "ScaledStdConv2D",
    "compiled_by_xla",
    "eca_kernel_size",
]
