"""ECA-MobileNetV2: torchvision's MobileNetV2 with ECA after each block's projection BN.

Layer names (block indices follow torchvision's ``features.N``, so ``block1`` is
``features.1``):

- stem ``conv1_{pad,conv,bn,relu}``;
- block ``blockN_expand_{conv,bn,relu}`` (absent when the expansion is 1),
  ``blockN_dw_{pad,conv,bn,relu}``, ``blockN_project_{conv,bn}``, ``blockN_eca`` (and its
  descriptor's ``blockN_eca_pool``), ``blockN_add`` (only where stride is 1 and the width is
  unchanged);
- ``top_{conv,bn,relu}`` (1x1 to 1280), then ``avg_pool``, ``top_dropout`` (0.25) and
  ``predictions``.
"""

from eca_keras.applications import constructors
from eca_keras.applications.registry import official_weights

MODEL_NAME = "eca_mobilenet_v2"
# (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# The release's rule: k = 1 where the row's output channels are below 96, else 3.
KERNEL_SIZES = tuple(1 if c < 96 else 3 for _, c, _, _ in INVERTED_RESIDUAL_SETTING)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
DROPOUT_RATE = 0.25


def make_divisible(value, divisor=8):
    """Rounds a width to the nearest multiple of ``divisor``, never more than 10% down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _inverted_residual(
    x, in_channels, out_channels, stride, expansion, kernel_size, attention, name
):
    from keras import layers

    from eca_keras.applications import blocks

    y = x
    if expansion != 1:
        y = blocks.conv_bn(y, in_channels * expansion, 1, 1, f"{name}_expand", activation="relu6")
    y = blocks.conv_bn(y, None, 3, stride, f"{name}_dw", activation="relu6", depthwise=True)
    if attention:
        y = blocks.conv_bn_eca(y, out_channels, 1, f"{name}_project", kernel_size, f"{name}_eca")
    else:
        y = blocks.conv_bn(y, out_channels, 1, 1, f"{name}_project", activation=None)
    if stride == 1 and in_channels == out_channels:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def pyramid_layers(layer_names):
    """``{"P1": ..., "P5": ...}``: the last block at each stride 2^n (P5: the last inverted
    residual, 320 channels; the 1x1 ``top`` convolution stays the backbone's output)."""
    names = set(layer_names)
    pyramid, stride, block = {}, 2, 0  # the stem halves the input
    for _, _, repeats, first_stride in INVERTED_RESIDUAL_SETTING:
        if first_stride == 2:
            pyramid[f"P{stride.bit_length() - 1}"] = _block_output(names, block)
            stride *= 2
        block += repeats
    pyramid[f"P{stride.bit_length() - 1}"] = _block_output(names, block)
    return pyramid


def _block_output(names, block):
    for suffix in ("add", "eca", "project_bn"):  # the block's last layer
        if f"block{block}_{suffix}" in names:
            return f"block{block}_{suffix}"
    raise ValueError(f"block{block} has no output layer")


def build_mobilenet_v2(model_name, *, kernel_sizes=None, attention=True, alpha=1.0, **arguments):
    """Builds ECA-MobileNetV2; ``arguments`` are keras.applications'."""
    from eca_keras.applications import blocks, builder

    if alpha <= 0:
        raise ValueError(f"`alpha` must be positive. Received: alpha={alpha}")
    if builder.pretrained_entry(model_name, arguments["weights"]) and alpha != 1.0:
        raise ValueError(
            "ImageNet weights exist only for `alpha=1.0` (the released ECA-MobileNetV2). "
            f"Received: alpha={alpha}"
        )
    kernel_sizes = builder.check_kernel_sizes(kernel_sizes, KERNEL_SIZES, model_name)
    builder.check_pretrained_variant(
        arguments["weights"], model_name, attention, kernel_sizes, KERNEL_SIZES
    )

    def body(inputs):
        channels = make_divisible(STEM_CHANNELS * alpha)
        x = blocks.conv_bn(inputs, channels, 3, 2, "conv1", activation="relu6")
        index = 1
        rows = zip(INVERTED_RESIDUAL_SETTING, kernel_sizes, strict=True)
        for (expansion, c, repeats, stride), k in rows:
            out_channels = make_divisible(c * alpha)
            for repeat in range(repeats):
                first_stride = stride if repeat == 0 else 1
                x = _inverted_residual(
                    x,
                    channels,
                    out_channels,
                    first_stride,
                    expansion,
                    k,
                    attention,
                    f"block{index}",
                )
                channels = out_channels
                index += 1
        last_channels = make_divisible(LAST_CHANNELS * max(1.0, alpha))
        return blocks.conv_bn(x, last_channels, 1, 1, "top", activation="relu6")

    return builder.build_application(
        model_name, body, default_size=224, dropout_rate=DROPOUT_RATE, **arguments
    )


_SUMMARY = (
    "The official ECA-Net release's MobileNetV2 (torchvision layout, width 1.0, "
    "Dropout 0.25 before the classifier)."
)
_WEIGHTS = (
    official_weights(
        MODEL_NAME,
        "eca_mobilenetv2_k13.pth.tar",
        "1FxzeXPg1SJQZzVVH4HRjMeq_SVMfidUm",
        72.56,
        90.81,
        baidu=("143B03YTGE2ogkPoCj3IorQ", "atpt"),
    ),
)
ECAMobileNetV2 = constructors.register_model(
    build_mobilenet_v2,
    "mobilenet_v2",
    MODEL_NAME,
    "ECAMobileNetV2",
    params=3_504_903,  # the released model's trainable parameters
    summary=_SUMMARY,
    weights=_WEIGHTS,
    kernel_sizes=KERNEL_SIZES,
    unit="row of the inverted-residual table (7 rows)",
    extras=(*constructors.STANDARD_EXTRAS, ("alpha", 1.0)),
    extra_doc="\n    alpha: width multiplier, as in ``keras.applications.MobileNetV2``; ImageNet\n"
    "        weights exist only for 1.0.",
    module=__name__,
    origin="official",
    head_dropout=DROPOUT_RATE,
    keras_baseline="MobileNetV2",
    reference="official",
)

__all__ = ["ECAMobileNetV2"]
