"""ECA-ResNets: the official ECA-Net models and timm's ECA-ResNet variants, one builder.

Every variant is a row of ``RESNET_VARIANTS``. The layout is torchvision's ResNet v1 with ECA after
the last BatchNorm of each block, before the residual add; timm's variants add deep stems and
average-pool shortcuts.

Layer names (the contract that checkpoint converters map onto; ``S`` is the stage 2..5, ``B`` the
block 1..n, as in ``keras.applications.ResNet50``):

- stem, plain: ``conv1_pad``, ``conv1_conv``, ``conv1_bn``, ``conv1_relu``; deep:
  ``conv1_{1,2}_{pad,conv,bn,relu}``, ``conv1_3_conv``, ``conv1_bn``, ``conv1_relu``;
  then ``pool1_pad``, ``pool1_pool``.
- block: ``convS_blockB_{1,2,3}_{pad,conv,bn,relu}`` (basic blocks have 1 and 2), the shortcut
  ``convS_blockB_0_{pool,conv,bn}``, the attention ``convS_blockB_eca`` (and its descriptor's
  ``convS_blockB_eca_pool``), then ``convS_blockB_add``
  and ``convS_blockB_out``.
- head: ``avg_pool`` and ``predictions`` (or ``avg_pool`` / ``max_pool`` for ``pooling``).
"""

import dataclasses

from keras import layers

from eca_keras.applications import base


@dataclasses.dataclass(frozen=True)
class ResNetVariant:
    """One ECA-ResNet architecture."""

    block: str  # "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1 x4)
    layers: tuple  # blocks per stage
    kernel_sizes: tuple  # ECA kernel size per stage
    params: int  # trainable parameters with the 1000-class head (the upstream count)
    stem: str = "plain"  # "plain" (7x7/2), "deep" (3x3 32-32-64), "deep_tiered" (3x3 24-32-64)
    avg_down: bool = False  # shortcut: AvgPool(2, ceil) -> 1x1 conv -> BN, instead of strided 1x1
    default_size: int = 224  # input size the ImageNet weights are evaluated at
    source: str = "official"  # "official" (BangguWu/ECANet) or "timm"


RESNET_VARIANTS = {
    "eca_resnet18": ResNetVariant("basic", (2, 2, 2, 2), (3, 5, 7, 7), 11_689_556),
    "eca_resnet34": ResNetVariant("basic", (3, 4, 6, 3), (3, 3, 5, 7), 21_797_744),
    "eca_resnet50": ResNetVariant("bottleneck", (3, 4, 6, 3), (3, 5, 5, 7), 25_557_112),
    "eca_resnet101": ResNetVariant("bottleneck", (3, 4, 23, 3), (3, 3, 5, 7), 44_549_317),
    "eca_resnet152": ResNetVariant("bottleneck", (3, 8, 36, 3), (3, 3, 5, 7), 60_193_042),
    # timm: k from the block's output channels with k >= 3, i.e. 5, 5, 5, 7 for bottlenecks.
    "ecaresnet26t": ResNetVariant(
        "bottleneck", (2, 2, 2, 2), (5, 5, 5, 7), 16_011_916, "deep_tiered", True, 256, "timm"
    ),
    "ecaresnet50d": ResNetVariant(
        "bottleneck", (3, 4, 6, 3), (5, 5, 5, 7), 25_576_350, "deep", True, 224, "timm"
    ),
    "ecaresnet50t": ResNetVariant(
        "bottleneck", (3, 4, 6, 3), (5, 5, 5, 7), 25_573_814, "deep_tiered", True, 256, "timm"
    ),
    "ecaresnetlight": ResNetVariant(
        "bottleneck", (1, 1, 11, 3), (5, 5, 5, 7), 30_162_046, "plain", True, 224, "timm"
    ),
    "ecaresnet101d": ResNetVariant(
        "bottleneck", (3, 4, 23, 3), (5, 5, 5, 7), 44_568_563, "deep", True, 224, "timm"
    ),
    "ecaresnet269d": ResNetVariant(
        "bottleneck", (3, 30, 48, 8), (5, 5, 5, 7), 102_093_077, "deep", True, 320, "timm"
    ),
}

STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
DEEP_STEM_WIDTHS = {"deep": (32, 32), "deep_tiered": (24, 32)}
EXPANSION = {"basic": 1, "bottleneck": 4}


def _stem(x, stem):
    if stem == "plain":
        x = base.conv_bn(x, 64, 7, 2, "conv1")
    else:
        first, second = DEEP_STEM_WIDTHS[stem]
        x = base.conv_bn(x, first, 3, 2, "conv1_1")
        x = base.conv_bn(x, second, 3, 1, "conv1_2")
        x = layers.Conv2D(
            64,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=base.conv_initializer(),
            name="conv1_3_conv",
        )(x)
        x = layers.BatchNormalization(
            axis=base.channel_axis(),
            epsilon=base.BN_EPSILON,
            momentum=base.BN_MOMENTUM,
            name="conv1_bn",
        )(x)
        x = layers.ReLU(name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    # Zero padding equals PyTorch's -inf padding here: the input is a ReLU output (>= 0).
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def _shortcut(x, filters, stride, avg_down, name):
    if avg_down:
        if stride > 1:
            # "same" pooling = ceil_mode=True with count_include_pad=False (padding not counted).
            x = layers.AveragePooling2D(2, strides=stride, padding="same", name=f"{name}_0_pool")(x)
        return base.conv_bn(x, filters, 1, 1, f"{name}_0", activation=None)
    return base.conv_bn(x, filters, 1, stride, f"{name}_0", activation=None)


def _block(x, variant, filters, stride, kernel_size, attention, needs_shortcut, name):
    """A basic or bottleneck block with ECA before the residual add."""
    out_filters = filters * EXPANSION[variant.block]
    shortcut = _shortcut(x, out_filters, stride, variant.avg_down, name) if needs_shortcut else x
    if variant.block == "basic":
        y = base.conv_bn(x, filters, 3, stride, f"{name}_1")
        last_kernel, last_name = 3, f"{name}_2"
    else:
        y = base.conv_bn(x, filters, 1, 1, f"{name}_1")
        y = base.conv_bn(y, filters, 3, stride, f"{name}_2")
        last_kernel, last_name = 1, f"{name}_3"
    if attention:
        y = base.conv_bn_eca(y, out_filters, last_kernel, last_name, kernel_size, f"{name}_eca")
    else:
        y = base.conv_bn(y, out_filters, last_kernel, 1, last_name, activation=None)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _stages(x, variant, kernel_sizes, attention):
    in_filters = 64
    stages = zip(STAGE_WIDTHS, STAGE_STRIDES, variant.layers, kernel_sizes, strict=True)
    for stage, (filters, stride, depth, kernel_size) in enumerate(stages, start=2):
        out_filters = filters * EXPANSION[variant.block]
        for index in range(depth):
            block_stride = stride if index == 0 else 1
            needs_shortcut = block_stride != 1 or in_filters != out_filters
            name = f"conv{stage}_block{index + 1}"
            x = _block(
                x, variant, filters, block_stride, kernel_size, attention, needs_shortcut, name
            )
            in_filters = out_filters
    return x


def build_resnet(
    model_name,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    kernel_sizes=None,
    attention=True,
):
    """Builds the registered ECA-ResNet ``model_name`` (a key of ``RESNET_VARIANTS``)."""
    variant = RESNET_VARIANTS[model_name]
    kernel_sizes = base.check_kernel_sizes(kernel_sizes, variant.kernel_sizes, model_name)
    base.check_pretrained_variant(
        weights, model_name, attention, kernel_sizes, variant.kernel_sizes
    )

    def body(inputs):
        return _stages(_stem(inputs, variant.stem), variant, kernel_sizes, attention)

    return base.build_application(
        model_name,
        body,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name or model_name,
        default_size=variant.default_size,
    )


def _constructor(model_name, public_name, summary):
    variant = RESNET_VARIANTS[model_name]
    constructor = base.make_constructor(
        build_resnet,
        model_name,
        public_name,
        title=public_name,
        summary=summary,
        kernel_sizes=variant.kernel_sizes,
        default_size=variant.default_size,
    )
    constructor.__module__ = __name__
    return constructor


_OFFICIAL = "The official ECA-Net release (Wang et al., CVPR 2020): {}-layer ResNet v1 with ECA."
_TIMM = "timm's {} (ECA-ResNet with {}), a stronger ImageNet training recipe."

ECAResNet18 = _constructor("eca_resnet18", "ECAResNet18", _OFFICIAL.format(18))
ECAResNet34 = _constructor("eca_resnet34", "ECAResNet34", _OFFICIAL.format(34))
ECAResNet50 = _constructor("eca_resnet50", "ECAResNet50", _OFFICIAL.format(50))
ECAResNet101 = _constructor("eca_resnet101", "ECAResNet101", _OFFICIAL.format(101))
ECAResNet152 = _constructor("eca_resnet152", "ECAResNet152", _OFFICIAL.format(152))
ECAResNet26T = _constructor(
    "ecaresnet26t", "ECAResNet26T", _TIMM.format("ecaresnet26t", "a tiered deep stem")
)
ECAResNet50D = _constructor(
    "ecaresnet50d", "ECAResNet50D", _TIMM.format("ecaresnet50d", "a deep stem, avg-down")
)
ECAResNet50T = _constructor(
    "ecaresnet50t", "ECAResNet50T", _TIMM.format("ecaresnet50t", "a tiered deep stem")
)
ECAResNetLight = _constructor(
    "ecaresnetlight", "ECAResNetLight", _TIMM.format("ecaresnetlight", "1-1-11-3 blocks")
)
ECAResNet101D = _constructor(
    "ecaresnet101d", "ECAResNet101D", _TIMM.format("ecaresnet101d", "a deep stem, avg-down")
)
ECAResNet269D = _constructor(
    "ecaresnet269d", "ECAResNet269D", _TIMM.format("ecaresnet269d", "a deep stem, avg-down")
)
