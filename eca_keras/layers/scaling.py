"""The constant scalings that keep a normalisation-free residual network's signal at unit
variance (Brock et al. 2021): a scaled activation and a scaled residual sum.

An NF-ResNet block computes ``x + alpha * f(act(x) * beta)``: ``beta = 1 / sqrt(Var(x))``, the
expected variance of the block's input, known analytically, brings the residual branch's input
back to unit variance, and ``alpha`` (0.2) sets how much each block adds to it. Neither has
weights; both are fixed by the architecture.
"""

import keras


@keras.saving.register_keras_serializable(package="eca_keras")
class ScaledActivation(keras.layers.Layer):
    """``activation(x) * scale``: an NF block's pre-activation ``act(x) * beta``, and timm's
    ``GammaAct`` (an activation times its gain correction ``gamma``).

    Args:
        activation: a Keras activation (name or callable), ``"silu"`` by default.
        scale: the constant factor.
    """

    def __init__(self, activation="silu", scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.scale = float(scale)
        self.supports_masking = True

    def call(self, inputs):
        return self.activation(inputs) * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"activation": keras.activations.serialize(self.activation), "scale": self.scale}
        )
        return config


@keras.saving.register_keras_serializable(package="eca_keras")
class ScaledResidual(keras.layers.Layer):
    """``shortcut + alpha * (branch_gain * branch)``: an NF block's output.

    Called on ``[shortcut, branch]`` (like ``keras.layers.Add``). ``branch_gain`` is timm's
    ``attn_gain``: 2.0 after an attention module (its sigmoid gates halve the branch), 1.0
    without one.

    Args:
        alpha: how much the residual branch adds (NFNets: 0.2).
        branch_gain: a constant gain on the branch before ``alpha``.
    """

    def __init__(self, alpha=0.2, branch_gain=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)
        self.branch_gain = float(branch_gain)

    def call(self, inputs):
        shortcut, branch = inputs
        if self.branch_gain != 1.0:
            branch = branch * self.branch_gain
        return branch * self.alpha + shortcut

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "branch_gain": self.branch_gain})
        return config
