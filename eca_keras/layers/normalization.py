"""The BatchNormalization that hands ECA a cheaper channel descriptor."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="eca_keras")
class DescriptorBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` that can also normalise an ECA descriptor.

    ``layer(x)`` is plain BatchNormalization. Called again on a pooled tensor,
    ``layer(GAP(x), pooled=True)`` normalises it with the moving statistics whatever ``training``
    is, and updates nothing: in inference that is the global average pool of ``layer(x)``
    (normalisation is an affine map per channel, so it commutes with the mean), got without
    reading ``layer(x)`` again. (A plain BatchNormalization called twice would run the second
    call in training mode under ``fit`` and update its moving statistics from the pooled tensor.)
    """

    def call(self, inputs, training=None, mask=None, pooled=False):
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
