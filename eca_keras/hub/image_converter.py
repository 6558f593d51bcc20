"""``ECAImageConverter``: the evaluation transform of a model's published accuracy, as keras-hub's
image converter (what ``classifier.predict(images)`` applies to raw pixels)."""

import keras
import keras_hub

from eca_keras.hub.backbone import ECABackbone
from eca_keras.preprocessing import IMAGENET_MEAN, IMAGENET_STD, EvalConfig

_STOCK_KEYS = (
    "scale",
    "offset",
    "crop_to_aspect_ratio",
    "pad_to_aspect_ratio",
    "antialias",
    "bounding_box_format",
)


@keras.saving.register_keras_serializable(package="eca_keras")
class ECAImageConverter(keras_hub.layers.ImageConverter):
    """Resize the short side to ``floor(image_size / crop_pct)``, center crop ``image_size``,
    then ``(x / 255 - mean) / std``: :func:`eca_keras.preprocessing.eval_transform` and
    :func:`~eca_keras.preprocessing.normalize`, the transform evaluation and export use.

    Takes RGB pixels in ``[0, 255]`` (any integer or float dtype): one image ``(H, W, 3)``, a
    batch ``(B, H, W, 3)``, or a ``tf.RaggedTensor`` batch of images of different sizes; returns
    float32 ``(..., image_size, image_size, 3)``. Its config is exactly an
    :class:`~eca_keras.preprocessing.EvalConfig`: ``image_size, crop_pct, interpolation, mean,
    std``.
    """

    backbone_cls = ECABackbone

    def __init__(
        self,
        image_size=224,
        crop_pct=0.875,
        interpolation="bilinear",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        **kwargs,
    ):
        for key in _STOCK_KEYS:  # a stock converter's config deserialises too
            kwargs.pop(key, None)
        if isinstance(image_size, list | tuple):
            if len(set(image_size)) != 1:
                raise ValueError(f"image_size must be square; received {image_size}")
            image_size = image_size[0]
        self.eval_config = EvalConfig(int(image_size), crop_pct, interpolation, mean, std)
        config = self.eval_config
        # The stock fields hold the equivalent affine map, for code that reads them.
        super().__init__(
            image_size=(config.input_size, config.input_size),
            scale=[1.0 / (255.0 * s) for s in config.std],
            offset=[-m / s for m, s in zip(config.mean, config.std, strict=True)],
            crop_to_aspect_ratio=True,
            interpolation=interpolation,
            antialias=True,
            **kwargs,
        )

    @classmethod
    def from_eval_config(cls, config, **kwargs):
        return cls(config.input_size, config.crop_pct, config.interpolation, config.mean,
                   config.std, **kwargs)  # fmt: skip

    def call(self, inputs):
        import numpy as np
        import tensorflow as tf

        from eca_keras.preprocessing import eval_transform, normalize

        config = self.eval_config
        size = config.input_size

        def one(image):
            if isinstance(image, tf.RaggedTensor):
                image = image.to_tensor()
            pixels = eval_transform(image, config)
            return normalize(pixels, config.mean, config.std)

        if isinstance(inputs, list | tuple):
            outputs = tf.stack([one(tf.convert_to_tensor(np.asarray(x))) for x in inputs])
        else:
            if not isinstance(inputs, tf.Tensor | tf.RaggedTensor):
                inputs = tf.convert_to_tensor(np.asarray(inputs))
            if inputs.shape.rank == 3:
                outputs = one(inputs)
            else:
                outputs = tf.map_fn(
                    one, inputs, fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32)
                )
        if keras.config.backend() != "tensorflow" and tf.executing_eagerly():
            return keras.ops.convert_to_tensor(outputs.numpy())
        return outputs

    def get_config(self):
        # Not ImageConverter.get_config: its scale/offset/resize keys derive from these.
        config = super(keras_hub.layers.ImageConverter, self).get_config()
        config.update(
            {
                "image_size": self.eval_config.input_size,
                "crop_pct": self.eval_config.crop_pct,
                "interpolation": self.eval_config.interpolation,
                "mean": list(self.eval_config.mean),
                "std": list(self.eval_config.std),
            }
        )
        return config
