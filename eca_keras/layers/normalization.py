"""The BatchNormalization that hands ECA its affine form instead of a normalised tensor."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="eca_keras")
class DescriptorBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` that can also give its affine form to ECA.

    ``layer(x)`` is plain BatchNormalization. ``layer(x, affine=True)`` returns instead the
    ``(2, channels)`` tensor ``[scale, offset]`` with ``layer(x) == x * scale + offset`` per
    channel: from the batch statistics of ``x`` in training (updating the moving statistics as
    ``layer(x)`` does, exactly once), from the moving statistics otherwise. ECA takes it as
    ``affine`` and never writes the normalised tensor (see :class:`~eca_keras.layers.ECA`).

    ``layer(GAP(x), pooled=True)`` (models built before 0.3) normalises a pooled tensor with the
    moving statistics whatever ``training`` is, and updates nothing.
    """

    def call(self, inputs, training=None, mask=None, pooled=False, affine=False):
        if affine:
            return self._affine(inputs, training, mask)
        if not pooled:
            return super().call(inputs, training=training, mask=mask)
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        outputs = ops.batch_normalization(
            x=ops.cast(inputs, compute_dtype),
            mean=ops.cast(self.moving_mean, compute_dtype),
            variance=ops.cast(self.moving_variance, compute_dtype),
            axis=self.axis,
            offset=ops.cast(self.beta, compute_dtype) if self.center else None,
            scale=ops.cast(self.gamma, compute_dtype) if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def _affine(self, inputs, training, mask):
        if self.renorm:
            raise ValueError("DescriptorBatchNormalization(affine=True) does not support renorm.")
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean = ops.cast(self.moving_mean, inputs.dtype)
        variance = ops.cast(self.moving_variance, inputs.dtype)
        if training and self.trainable:
            batch_mean, batch_variance = self._moments(inputs, mask)
            self.moving_mean.assign(mean * self.momentum + batch_mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                variance * self.momentum + batch_variance * (1.0 - self.momentum)
            )
            mean, variance = batch_mean, batch_variance
        scale = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * ops.cast(self.gamma, inputs.dtype)
        if self.center:
            offset = ops.cast(self.beta, inputs.dtype) - mean * scale
        else:
            offset = -mean * scale
        return ops.cast(ops.stack([scale, offset]), self.compute_dtype)

    def compute_output_spec(self, inputs, training=None, mask=None, pooled=False, affine=False):
        if affine:
            channels = inputs.shape[self.axis]
            return keras.KerasTensor((2, channels), dtype=self.compute_dtype)
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
