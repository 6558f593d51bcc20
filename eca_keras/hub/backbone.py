"""``ECABackbone``: any registered eca_keras architecture as a keras-hub feature pyramid."""

import keras
import keras_hub

from eca_keras.applications import registry
from eca_keras.applications.features import pyramid_layer_names


@keras.saving.register_keras_serializable(package="eca_keras")
class ECABackbone(keras_hub.models.FeaturePyramidBackbone):
    """An eca_keras network without its head, as a ``keras_hub.models.FeaturePyramidBackbone``.

    The layers are those of the keras.applications-style constructor (same names, same order),
    so its converted ImageNet weights and ``.weights.h5`` files load as they are.
    ``pyramid_outputs`` is ``{"P1": ..., "P5": ...}`` (Pn at stride 2^n, the last block of each
    stage), the input of keras-hub's RetinaNet and DeepLabV3.

    Args:
        architecture: a registered model name (``eca_resnet50``, ``ecaresnet50d``...).
        kernel_sizes, attention, alpha: the constructor's arguments (``alpha`` for
            ``eca_mobilenet_v2`` only); ``None`` keeps the constructor's default.
        image_shape: the input shape, ``(None, None, 3)`` (any size) by default.
        dtype: the dtype policy of every layer.
    """

    def __init__(
        self,
        architecture,
        kernel_sizes=None,
        attention=True,
        alpha=None,
        image_shape=(None, None, 3),
        dtype=None,
        **kwargs,
    ):
        options = {} if alpha is None else {"alpha": alpha}
        if kernel_sizes is not None:
            options["kernel_sizes"] = tuple(kernel_sizes)
        with _dtype_policy(dtype):
            features = registry.get_model(
                architecture,
                weights=None,
                include_top=False,
                input_shape=tuple(image_shape),
                attention=attention,
                **options,
            )
        layers = pyramid_layer_names(architecture, [layer.name for layer in features.layers])
        pyramid = {level: features.get_layer(name).output for level, name in layers.items()}
        kwargs.setdefault("name", architecture)
        super().__init__(inputs=features.input, outputs=features.output, dtype=dtype, **kwargs)
        self.architecture = architecture
        self.kernel_sizes = None if kernel_sizes is None else list(kernel_sizes)
        self.attention = attention
        self.alpha = alpha
        self.image_shape = tuple(image_shape)
        self.pyramid_outputs = pyramid

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "architecture": self.architecture,
                "kernel_sizes": self.kernel_sizes,
                "attention": self.attention,
                "alpha": self.alpha,
                "image_shape": list(self.image_shape),
            }
        )
        return config


class _dtype_policy:  # noqa: N801 (a context manager used like a function)
    """Builds under ``dtype`` as the global policy (the constructors take none), then restores."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __enter__(self):
        self.previous = keras.config.dtype_policy()
        if self.dtype is not None:
            keras.config.set_dtype_policy(keras.dtype_policies.get(self.dtype))

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.previous)
