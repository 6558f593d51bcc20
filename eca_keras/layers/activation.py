"""The ReLU after a residual block's add, written so that XLA computes each block output once.

A ResNet's block output ``relu(shortcut + branch)`` feeds the next block twice: its first
convolution and its residual add. XLA's fusion pass duplicates cheap elementwise producers into
every consumer that can fuse them, and it counts ``maximum(x, 0)`` as unary (the zero is a
broadcast), so it fuses a copy of the ReLU into the next block's add, then the add that ReLU
reads, then *that* block's shortcut, and so on back to the start of the stage: block ``n`` of a
stage recomputes the adds, BatchNorms and gates of all ``n - 1`` blocks before it. The work grows
with the square of the depth (ecaresnet269d's 48-block stage: fusions of ~290 operands, 7-87 ms
each at batch 1), and the more per-channel arithmetic a block's tail has, the more each copy
costs, so ECA paid it several times over.

``where(x > 0, x, 0)`` is the same function with two full-size operands, which XLA will not
duplicate into a second consumer when the first (the convolution) cannot fuse it: each block
output is written once and read by both. Outside XLA the layer is Keras' ReLU.
"""

import keras

from eca_keras.layers.eca import compiled_by_xla


@keras.saving.register_keras_serializable(package="eca_keras")
class ResidualReLU(keras.layers.ReLU):
    """``keras.layers.ReLU`` for a residual block's output: the same function and arguments;
    where XLA compiles it (JAX; TensorFlow in ``jit_compile=True``) the plain ReLU (no
    ``max_value``, ``negative_slope`` or ``threshold``) is written as ``where(x > 0, x, 0)`` so
    that XLA does not recompute the earlier blocks in every block (see the module docstring)."""

    def call(self, inputs):
        plain = self.max_value is None and not self.negative_slope and not self.threshold
        if plain and compiled_by_xla():
            return keras.ops.where(inputs > 0, inputs, keras.ops.zeros_like(inputs))
        return super().call(inputs)
