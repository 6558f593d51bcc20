"""Convolution with scaled weight standardisation (Brock et al. 2021, the NF-ResNets and NFNets).

Normalisation-free networks standardise each filter of the kernel instead of normalising the
activations: per output filter, ``(w - mean(w)) / sqrt(var(w) + epsilon)``, times
``gamma / sqrt(fan_in)`` (``gamma`` corrects the variance the following activation function
takes away) and a learned per-filter ``gain``. This is timm's ``ScaledStdConv2d`` (its
mean and biased variance, ``epsilon`` added to the variance), written as a Keras ``Conv2D``:
the standardised kernel goes through ``Conv2D``'s own convolution, so everything that reads a
``Conv2D`` (shapes, ``eca_keras.complexity.count_macs``) reads this layer too.
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="eca_keras")
class ScaledStdConv2D(keras.layers.Conv2D):
    """``Conv2D`` whose kernel is standardised per output filter, scaled and given a gain.

    ``kernel' = gain * gamma / sqrt(fan_in) * (kernel - mean) / sqrt(var + epsilon)``, with the
    mean and the (biased) variance of each filter over its ``kernel_h * kernel_w * in/groups =
    fan_in`` weights; then the convolution and the bias, as ``Conv2D``.

    Args:
        filters, kernel_size, ...: as ``keras.layers.Conv2D`` (``use_bias`` defaults to True, as
            in timm).
        gamma: the activation's gain correction (timm: 1.7881293296813965 after SiLU).
        epsilon: added to the variance (timm's class default 1e-6; the NFNets use 1e-5).
        gain_initializer: initializer of the per-filter ``gain`` (``"ones"``; NFNets start each
            residual branch's last convolution at ``"zeros"``).

    Weights: ``kernel`` ``(kh, kw, in/groups, filters)``, ``bias`` ``(filters,)``, ``gain``
    ``(filters,)``, in that order. They are kept in float32 and standardised in float32 under
    mixed precision; the standardised kernel and the bias are then cast to the compute dtype.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        gamma=1.0,
        epsilon=1e-6,
        gain_initializer="ones",
        use_bias=True,
        **kwargs,
    ):
        super().__init__(filters, kernel_size, use_bias=use_bias, **kwargs)
        if epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon}")
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.gain_initializer = keras.initializers.get(gain_initializer)

    def add_weight(self, *args, **kwargs):
        # Not autocast: the standardisation runs in float32 even under mixed precision.
        kwargs["autocast"] = False
        return super().add_weight(*args, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.gain = self.add_weight(
            name="gain", shape=(self.filters,), initializer=self.gain_initializer
        )

    def standardized_kernel(self):
        """The kernel the convolution uses (float32)."""
        kernel = ops.cast(self.kernel, "float32")
        axes = (0, 1, 2)
        mean = ops.mean(kernel, axis=axes, keepdims=True)
        variance = ops.var(kernel, axis=axes, keepdims=True)
        fan_in = math.prod(kernel.shape[:3])
        scale = ops.cast(self.gain, "float32") * (self.gamma / math.sqrt(fan_in))
        return (kernel - mean) * ops.rsqrt(variance + self.epsilon) * scale

    def call(self, inputs):
        kernel = ops.cast(self.standardized_kernel(), self.compute_dtype)
        outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            shape = [1] * len(outputs.shape)
            shape[-1 if self.data_format == "channels_last" else 1] = self.filters
            outputs = outputs + ops.reshape(ops.cast(self.bias, self.compute_dtype), shape)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _own_variables(self):
        return [self._kernel, *([self.bias] if self.use_bias else []), self.gain]

    def save_own_variables(self, store):
        # Conv2D saves kernel and bias only; the gain is this layer's own.
        if self.built:
            for index, variable in enumerate(self._own_variables()):
                store[str(index)] = variable

    def load_own_variables(self, store):
        if not self.built:
            return
        variables = self._own_variables()
        if len(store.keys()) != len(variables):
            raise ValueError(
                f"Layer {self.name!r} expects {len(variables)} variables (kernel, bias, gain), "
                f"but the file holds {len(store.keys())}."
            )
        for index, variable in enumerate(variables):
            variable.assign(store[str(index)])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "gamma": self.gamma,
                "epsilon": self.epsilon,
                "gain_initializer": keras.initializers.serialize(self.gain_initializer),
            }
        )
        return config
