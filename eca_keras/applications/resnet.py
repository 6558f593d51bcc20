"""ECA-ResNets: the official ECA-Net models and timm's ECA-ResNet variants, one builder.

Every variant is one :func:`register_resnet` row at the end of this file. The layout is
torchvision's ResNet v1 with ECA after the last BatchNorm of each block, before the residual add;
timm's variants add deep stems and average-pool shortcuts.

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
import re

from eca_keras.applications import constructors, registry
from eca_keras.applications.registry import official_weights, timm_weights


@dataclasses.dataclass(frozen=True)
class ResNetVariant:
    """One ECA-ResNet architecture."""

    block: str  # "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1 x4)
    layers: tuple  # blocks per stage
    kernel_sizes: tuple  # ECA kernel size per stage
    stem: str = "plain"  # "plain" (7x7/2), "deep" (3x3 32-32-64), "deep_tiered" (3x3 24-32-64)
    avg_down: bool = False  # shortcut: AvgPool(2, ceil) -> 1x1 conv -> BN, instead of strided 1x1
    # Pruned widths (timm's *_pruned): per stage (output channels, per block (conv1, conv2)
    # channels); the layers per stage follow from it. None: the standard widths.
    pruned: tuple | None = None

    def widths(self, stage, block):
        """``(conv1, conv2, output)`` channels of block ``block`` of stage ``stage`` (from 0)."""
        if self.pruned is not None:
            output, blocks = self.pruned[stage]
            return (*blocks[block], output)
        width = STAGE_WIDTHS[stage]
        return width, width, width * EXPANSION[self.block]


RESNET_VARIANTS = {}  # name -> ResNetVariant, filled by register_resnet

STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
DEEP_STEM_WIDTHS = {"deep": (32, 32), "deep_tiered": (24, 32)}
EXPANSION = {"basic": 1, "bottleneck": 4}


def _stem(x, stem):
    from keras import layers

    from eca_keras.applications import blocks

    if stem == "plain":
        x = blocks.conv_bn(x, 64, 7, 2, "conv1")
    else:
        first, second = DEEP_STEM_WIDTHS[stem]
        x = blocks.conv_bn(x, first, 3, 2, "conv1_1")
        x = blocks.conv_bn(x, second, 3, 1, "conv1_2")
        x = blocks.conv(64, 3, 1, "same", "conv1_3_conv")(x)
        x = blocks.batch_norm("conv1_bn")(x)
        x = layers.ReLU(name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    # Zero padding equals PyTorch's -inf padding here: the input is a ReLU output (>= 0).
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def _shortcut(x, filters, stride, avg_down, name):
    from keras import layers

    from eca_keras.applications import blocks

    if avg_down:
        if stride > 1:
            # "same" pooling = ceil_mode=True with count_include_pad=False (padding not counted).
            x = layers.AveragePooling2D(2, strides=stride, padding="same", name=f"{name}_0_pool")(x)
        return blocks.conv_bn(x, filters, 1, 1, f"{name}_0", activation=None)
    return blocks.conv_bn(x, filters, 1, stride, f"{name}_0", activation=None)


def _block(x, variant, widths, stride, kernel_size, attention, needs_shortcut, name):
    """A basic or bottleneck block with ECA before the residual add; ``widths``: the
    ``(conv1, conv2, output)`` channels."""
    from keras import layers

    from eca_keras.applications import blocks
    from eca_keras.layers import ResidualReLU

    first, second, out_filters = widths
    shortcut = _shortcut(x, out_filters, stride, variant.avg_down, name) if needs_shortcut else x
    if variant.block == "basic":
        y = blocks.conv_bn(x, first, 3, stride, f"{name}_1")
        last_kernel, last_name = 3, f"{name}_2"
    else:
        y = blocks.conv_bn(x, first, 1, 1, f"{name}_1")
        y = blocks.conv_bn(y, second, 3, stride, f"{name}_2")
        last_kernel, last_name = 1, f"{name}_3"
    if attention:
        y = blocks.conv_bn_eca(y, out_filters, last_kernel, last_name, kernel_size, f"{name}_eca")
    else:
        y = blocks.conv_bn(y, out_filters, last_kernel, 1, last_name, activation=None)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return ResidualReLU(name=f"{name}_out")(y)


def _stages(x, variant, kernel_sizes, attention):
    in_filters = 64
    stages = zip(STAGE_STRIDES, variant.layers, kernel_sizes, strict=True)
    for stage, (stride, depth, kernel_size) in enumerate(stages):
        for index in range(depth):
            widths = variant.widths(stage, index)
            block_stride = stride if index == 0 else 1
            needs_shortcut = block_stride != 1 or in_filters != widths[2]
            name = f"conv{stage + 2}_block{index + 1}"
            x = _block(
                x, variant, widths, block_stride, kernel_size, attention, needs_shortcut, name
            )
            in_filters = widths[2]
    return x


def pyramid_layers(layer_names):
    """``{"P1": ..., "P5": ...}``: the layers whose outputs are the feature pyramid (Pn at stride
    2^n): the stem's last activation, then the last block of each stage, as timm's
    ``features_only`` returns them."""
    names = set(layer_names)
    pyramid = {"P1": "conv1_relu"}
    for stage in (2, 3, 4, 5):
        depth = sum(1 for name in names if re.fullmatch(rf"conv{stage}_block\d+_out", name))
        pyramid[f"P{stage}"] = f"conv{stage}_block{depth}_out"
    return pyramid


def build_resnet(model_name, *, kernel_sizes=None, attention=True, **arguments):
    """Builds the registered ECA-ResNet ``model_name``; ``arguments`` are keras.applications'."""
    from eca_keras.applications import builder

    variant = RESNET_VARIANTS[model_name]
    kernel_sizes = builder.check_kernel_sizes(kernel_sizes, variant.kernel_sizes, model_name)
    builder.check_pretrained_variant(
        arguments["weights"], model_name, attention, kernel_sizes, variant.kernel_sizes
    )

    def body(inputs):
        return _stages(_stem(inputs, variant.stem), variant, kernel_sizes, attention)

    default_size = registry.model_info(model_name).default_size
    return builder.build_application(model_name, body, default_size=default_size, **arguments)


def register_resnet(name, public_name, variant, *, params, summary, weights=(), **facts):
    """One row: registers ECA-ResNet ``name`` (``facts``: the other :class:`ModelInfo` fields,
    ``default_size`` 224 unless given) and returns its public constructor."""
    constructor = constructors.register_model(
        build_resnet, "resnet", name, public_name, params=params, summary=summary,
        weights=weights, kernel_sizes=variant.kernel_sizes, module=__name__, **facts,
    )  # fmt: skip
    RESNET_VARIANTS[name] = variant  # after the registry accepted the name
    return constructor


_OFFICIAL = "The official ECA-Net release (Wang et al., CVPR 2020): {}-layer ResNet v1 with ECA."
_TIMM = "timm's {} (ECA-ResNet with {}), a stronger ImageNet training recipe."
_OFFICIAL_FACTS = {"origin": "official", "reference": "official"}
_TIMM_FACTS = {"origin": "timm", "reference": "timm"}
# timm: k from the block's output channels with k >= 3, i.e. 5, 5, 5, 7 for bottlenecks.
_TIMM_K = (5, 5, 5, 7)


def _official(depth, block, layers, kernel_sizes, params, checkpoint, baseline=None):
    """A row of the official release: ``checkpoint`` = (file, Drive id, top-1, top-5, Baidu)."""
    name, (file_name, drive_id, top1, top5, baidu) = f"eca_resnet{depth}", checkpoint
    return register_resnet(
        name, f"ECAResNet{depth}", ResNetVariant(block, layers, kernel_sizes), params=params,
        summary=_OFFICIAL.format(depth), keras_baseline=baseline, **_OFFICIAL_FACTS,
        weights=[official_weights(name, file_name, drive_id, top1, top5, baidu=baidu)],
    )  # fmt: skip


# (depth, block, blocks per stage, ECA k per stage, parameters, (released checkpoint, Google
# Drive id, published top-1 / top-5, Baidu share and extraction code), keras.applications twin)
ECAResNet18 = _official(18, "basic", (2, 2, 2, 2), (3, 5, 7, 7), 11_689_556, (
    "eca_resnet18_k3577.pth.tar", "1LMRFRTyzVifGBi2MUpTuYEWW44S8mwyl", 70.92, 89.93,
    ("1Bh9J7VY2tYj5oEvEEqvdhQ", "utsy")))  # fmt: skip
ECAResNet34 = _official(34, "basic", (3, 4, 6, 3), (3, 3, 5, 7), 21_797_744, (
    "eca_resnet34_k3357.pth.tar", "15LV5Jkea3GPzvLP5__H7Gg88oNQUxBDE", 74.21, 91.83,
    ("1FFVUBbbJfNNFhyiZZ2P2AQ", "o4dh")))  # fmt: skip
ECAResNet50 = _official(50, "bottleneck", (3, 4, 6, 3), (3, 5, 5, 7), 25_557_112, (
    "eca_resnet50_k3557.pth.tar", "1670rce333c_lyMWFzBlNZoVUvtxbCF_U", 77.42, 93.62,
    ("18LXDcxy8qG66h-7FlWW4SA", "no6u")), "ResNet50")  # fmt: skip
ECAResNet101 = _official(101, "bottleneck", (3, 4, 23, 3), (3, 3, 5, 7), 44_549_317, (
    "eca_resnet101_k3357.pth.tar", "1b5FQ8yDFnZ_UhvWT9txmjI_LjbKkgnvC", 78.65, 94.34,
    ("1-ageRP2tku-YSIOqU09WpA", "iov1")), "ResNet101")  # fmt: skip
ECAResNet152 = _official(152, "bottleneck", (3, 8, 36, 3), (3, 3, 5, 7), 60_193_042, (
    "eca_resnet152_k3357.pth.tar", "1_bYnaOg9ptsILC_iC7uQ5Izv-u2rjYG5", 78.92, 94.55,
    ("1tPxHAltlcpI93CXUkW9ZOQ", "xaft")), "ResNet152")  # fmt: skip


def _timm(name, public_name, layers, stem, params, summary, weights, size=224, **facts):
    """A row of timm's: bottlenecks, avg-down shortcuts, k 5-5-5-7; ``weights``: the
    ``timm_weights`` arguments after the model name, one tuple per published tag."""
    if isinstance(layers, tuple) and isinstance(layers[0], tuple):  # pruned widths
        variant = ResNetVariant("bottleneck", tuple(len(b) for _, b in layers), _TIMM_K, stem,
                                True, layers)  # fmt: skip
    else:
        variant = ResNetVariant("bottleneck", layers, _TIMM_K, stem, True)
    entries = [timm_weights(name, *arguments) for arguments in weights]
    return register_resnet(
        name, public_name, variant, params=params, default_size=size, weights=entries,
        summary=_TIMM.format(name, summary), **_TIMM_FACTS, **facts,
    )  # fmt: skip


# (name, constructor, blocks per stage (or pruned widths), stem, parameters, summary, timm's
# weights: (tag, size, crop, top-1, top-5, (test size, crop, top-1, top-5)))
ECAResNet26T = _timm("ecaresnet26t", "ECAResNet26T", (2, 2, 2, 2), "deep_tiered", 16_011_916,
    "a tiered deep stem", [("ra2_in1k", 256, 0.875, 78.894, 94.548, (320, 0.95, 79.900, 95.070))],
    size=256)  # fmt: skip
ECAResNet50D = _timm("ecaresnet50d", "ECAResNet50D", (3, 4, 6, 3), "deep", 25_576_350,
    "a deep stem, avg-down",
    [("miil_in1k", 224, 0.875, 80.634, 95.310, (288, 0.95, 81.648, 95.884))],
    keras_baseline="ResNet50")  # fmt: skip
ECAResNet50T = _timm("ecaresnet50t", "ECAResNet50T", (3, 4, 6, 3), "deep_tiered", 25_573_814,
    "a tiered deep stem", [
        ("ra2_in1k", 256, 0.875, 81.450, 95.678, (320, 0.95, 82.370, 96.120)),
        ("a1_in1k", 224, 0.95, 81.282, 95.150, (288, 1.0, 82.110, 95.654)),
        ("a2_in1k", 224, 0.95, 80.884, 95.022, (288, 1.0, 81.682, 95.524)),
        ("a3_in1k", 160, 0.95, 77.786, 93.620, (224, 0.95, 79.548, 94.710)),
    ], size=256, keras_baseline="ResNet50")  # fmt: skip
ECAResNetLight = _timm("ecaresnetlight", "ECAResNetLight", (1, 1, 11, 3), "plain", 30_162_046,
    "1-1-11-3 blocks",
    [("miil_in1k", 224, 0.875, 80.454, 95.248, (288, 0.95, 81.430, 95.790))],
    keras_baseline="ResNet50")  # fmt: skip
ECAResNet101D = _timm("ecaresnet101d", "ECAResNet101D", (3, 4, 23, 3), "deep", 44_568_563,
    "a deep stem, avg-down",
    [("miil_in1k", 224, 0.875, 82.180, 96.062, (288, 0.95, 83.006, 96.524))],
    keras_baseline="ResNet101")  # fmt: skip
# timm's pruned networks: channels per stage and block as its pruned definitions give them (per
# stage: output, then (conv1, conv2) per block); ECA's kernel sizes stay the unpruned ones.
ECAResNet50DPruned = _timm("ecaresnet50d_pruned", "ECAResNet50DPruned", (
    (19, ((47, 18), (52, 22), (64, 35))),
    (171, ((85, 37), (107, 80), (120, 85), (125, 87))),
    (818, ((198, 126), (255, 232), (256, 233), (253, 235), (256, 225), (256, 239))),
    (2022, ((492, 237), (512, 500), (512, 490))),
), "deep", 19_939_713, "a deep stem, avg-down, pruned channels",
    [("miil_in1k", 224, 0.875, 79.714, 94.862, (288, 0.95, 80.808, 95.566))])  # fmt: skip
ECAResNet101DPruned = _timm("ecaresnet101d_pruned", "ECAResNet101DPruned", (
    (26, ((45, 25), (53, 20), (60, 27))),
    (142, ((81, 24), (93, 49), (102, 54), (122, 78))),
    (278, ((101, 25), (239, 160), (234, 156), (250, 176), (253, 191), (251, 175), (230, 128),
           (244, 154), (244, 159), (238, 97), (244, 149), (253, 181), (245, 119), (255, 216),
           (256, 201), (253, 149), (254, 141), (256, 190), (256, 217), (255, 156), (256, 155),
           (256, 232), (256, 214))),
    (2042, ((499, 289), (512, 512), (512, 502))),
), "deep", 24_876_040, "a deep stem, avg-down, pruned channels",
    [("miil_in1k", 224, 0.875, 80.810, 95.642, (288, 0.95, 82.016, 96.180))])  # fmt: skip
ECAResNet269D = _timm("ecaresnet269d", "ECAResNet269D", (3, 30, 48, 8), "deep", 102_093_077,
    "a deep stem, avg-down",
    [("ra2_in1k", 320, 0.95, 84.724, 97.180, (352, 1.0, 84.968, 97.224))], size=320)  # fmt: skip

__all__ = [registry.model_info(name).constructor.__name__ for name in RESNET_VARIANTS]
