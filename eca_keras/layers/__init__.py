"""Keras layers of this package, registered for ``.keras`` files under ``eca_keras>``.

- :class:`ECA` (:mod:`~eca_keras.layers.eca`): Efficient Channel Attention, and
  :func:`eca_kernel_size`, the paper's adaptive kernel size.
- :class:`DescriptorBatchNormalization` (:mod:`~eca_keras.layers.normalization`): the
  BatchNormalization that hands ECA a cheaper channel descriptor.
"""

from eca_keras.layers.eca import ECA, compiled_by_xla, eca_kernel_size
from eca_keras.layers.normalization import DescriptorBatchNormalization

__all__ = ["ECA", "DescriptorBatchNormalization", "compiled_by_xla", "eca_kernel_size"]
