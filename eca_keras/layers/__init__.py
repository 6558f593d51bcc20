"""Keras layers of this package, registered for ``.keras`` files under ``eca_keras>``.

- :class:`ECA` (:mod:`~eca_keras.layers.eca`): Efficient Channel Attention, and
  :func:`eca_kernel_size`, the paper's adaptive kernel size.
- :class:`DescriptorBatchNormalization` (:mod:`~eca_keras.layers.normalization`): the
  BatchNormalization that hands ECA a cheaper channel descriptor.
- :class:`ScaledStdConv2D` (:mod:`~eca_keras.layers.conv`): convolution with scaled weight
  standardisation (the NFNets').
- :class:`ScaledActivation`, :class:`ScaledResidual` (:mod:`~eca_keras.layers.scaling`): the
  constant scalings of normalisation-free residual blocks.
"""

from eca_keras.layers.conv import ScaledStdConv2D
from eca_keras.layers.eca import ECA, compiled_by_xla, eca_kernel_size
from eca_keras.layers.normalization import DescriptorBatchNormalization
from eca_keras.layers.scaling import ScaledActivation, ScaledResidual

__all__ = [
    "ECA",
    "DescriptorBatchNormalization",
    "ScaledActivation",
    "ScaledResidual",
    "ScaledStdConv2D",
    "compiled_by_xla",
    "eca_kernel_size",
]
