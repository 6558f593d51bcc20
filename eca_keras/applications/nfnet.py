"""ECA-NFNets: timm's normalisation-free "light" NFNets with ECA (``eca_nfnet_l0/l1/l2``).

Every variant is one :func:`register_nfnet` row at the end of this file. The layout is timm's
``NormFreeNet`` (Brock et al. 2021, "High-Performance Large-Scale Image Recognition Without
Normalization", in Ross Wightman's lighter L variants): no BatchNorm anywhere; every convolution
is a :class:`~eca_keras.layers.ScaledStdConv2D` (scaled weight standardisation with a bias and a
per-filter gain, SiLU's gain correction 1.7881); a 4-conv stem (3x3, 16-32-64-128, strides 2 and
2); four stages of pre-activation bottlenecks (256, 512, 1536, 1536 channels; width 1/4 of them,
grouped 3x3 convolutions of 64 channels per group, an extra 3x3) with ECA after the last
convolution (k = 5 everywhere: timm's rule with k >= 3); a final 1x1 convolution (1.5x or 2x the
last width) and SiLU; the global-average-pool head.

A block computes ``x + 0.2 * 2 * ECA(f(silu(x) * beta))`` where ``beta = 1 / sqrt(expected
variance of x)`` (:class:`~eca_keras.layers.ScaledActivation`,
:class:`~eca_keras.layers.ScaledResidual`); the first block of a stage takes its shortcut from
``silu(x) * beta`` through ``AvgPool(2, ceil)`` (stride 2) and a 1x1 convolution. ``attention=
False`` removes ECA and its gain of 2 (timm's same network with ``attn_layer=None``).

Layer names (the contract that checkpoint converters map onto; ``S`` is the stage 1..4, ``B``
the block 1..n, each timm's ``stages.{S-1}.{B-1}``):

- stem: ``stem_conv1_pad``, ``stem_conv1``, ``stem_act2``, ``stem_conv2``, ``stem_act3``,
  ``stem_conv3``, ``stem_act4``, ``stem_conv4_pad``, ``stem_conv4`` (timm's ``stem.*``).
- block: ``stageS_blockB_act1`` (SiLU times beta), the shortcut's ``stageS_blockB_downsample_pool``
  (stride 2 only) and ``stageS_blockB_downsample_conv`` (first block of a stage only),
  ``stageS_blockB_conv1``, ``_act2``, ``_conv2_pad`` (stride 2 only), ``_conv2``, ``_act2b``,
  ``_conv2b``, ``_act3``, ``_conv3``, ``stageS_blockB_eca`` (with its descriptor's
  ``stageS_blockB_eca_pool`` where that is the cheaper read; absent with ``attention=False``),
  ``stageS_blockB_add``.
- ``final_conv``, ``final_act``; head ``avg_pool`` and ``predictions`` (or ``avg_pool`` /
  ``max_pool`` for ``pooling``).
"""

import dataclasses
import re

from eca_keras.applications import constructors, registry
from eca_keras.applications.registry import timm_weights


@dataclasses.dataclass(frozen=True)
class NFNetVariant:
    """One ECA-NFNet architecture."""

    depths: tuple  # blocks per stage
    final_multiplier: float  # final 1x1 conv width / last stage width


NFNET_VARIANTS = {}  # name -> NFNetVariant, filled by register_nfnet

STAGE_WIDTHS = (256, 512, 1536, 1536)
STAGE_STRIDES = (1, 2, 2, 2)  # after the stem's stride 4
STEM_WIDTHS = (16, 32, 64, 128)
STEM_STRIDES = (2, 1, 1, 2)
BOTTLENECK_RATIO = 0.25
GROUP_WIDTH = 64  # channels per group of the 3x3 convolutions
KERNEL_SIZES = (5, 5, 5, 5)  # timm's k = max(|(log2 C + 1) / 2|_odd, 3) for C = 256 ... 1536
ALPHA = 0.2  # how much each block adds to the residual stream's variance
ATTENTION_GAIN = 2.0  # timm's attn_gain: undoes the sigmoid gates' halving
SILU_GAMMA = 1.7881293296813965  # SiLU's gain correction (DeepMind's table, timm's _nonlin_gamma)
STD_EPSILON = 1e-5  # timm's NfCfg.std_conv_eps


def _conv(filters, kernel_size, name, strides=1, groups=1, gain="ones"):
    """A :class:`ScaledStdConv2D` with timm's initialisation (kaiming normal, fan-in, linear)."""
    import keras

    from eca_keras.layers import ScaledStdConv2D

    return ScaledStdConv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid" if strides > 1 else "same",
        groups=groups,
        gamma=SILU_GAMMA,
        epsilon=STD_EPSILON,
        gain_initializer=gain,
        kernel_initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "untruncated_normal"),
        name=name,
    )


def _padded_conv(x, filters, kernel_size, strides, name, groups=1):
    """PyTorch's symmetric padding before a strided convolution (Keras' "same" would pad only
    bottom/right)."""
    from keras import layers

    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    return _conv(filters, kernel_size, name, strides, groups)(x)


def _silu(name):
    from keras import layers

    return layers.Activation("silu", name=name)


def _stem(x):
    x = _padded_conv(x, STEM_WIDTHS[0], 3, STEM_STRIDES[0], "stem_conv1")
    for index in range(1, len(STEM_WIDTHS)):
        x = _silu(f"stem_act{index + 1}")(x)
        x = _padded_conv(x, STEM_WIDTHS[index], 3, STEM_STRIDES[index], f"stem_conv{index + 1}")
    return x


def _block(x, in_width, width, stride, beta, kernel_size, attention, name):
    """A pre-activation NF bottleneck with ECA after its last convolution."""
    from keras import layers

    from eca_keras.applications import blocks
    from eca_keras.layers import ECA, ScaledActivation, ScaledResidual

    mid = int(width * BOTTLENECK_RATIO)
    groups = mid // GROUP_WIDTH
    preactivated = ScaledActivation("silu", beta, name=f"{name}_act1")(x)
    shortcut = x
    if in_width != width or stride != 1:
        shortcut = preactivated
        if stride > 1:
            # "same" pooling = ceil_mode=True with count_include_pad=False (padding not counted).
            shortcut = layers.AveragePooling2D(
                2, strides=stride, padding="same", name=f"{name}_downsample_pool"
            )(shortcut)
        shortcut = _conv(width, 1, f"{name}_downsample_conv")(shortcut)
    y = _conv(mid, 1, f"{name}_conv1")(preactivated)
    y = _silu(f"{name}_act2")(y)
    y = _padded_conv(y, mid, 3, stride, f"{name}_conv2", groups)
    y = _silu(f"{name}_act2b")(y)
    y = _conv(mid, 3, f"{name}_conv2b", groups=groups)(y)
    y = _silu(f"{name}_act3")(y)
    # The residual branch starts at zero: timm initialises its last gain to 0 (skipinit off).
    last = _conv(width, 1, f"{name}_conv3", gain="zeros")
    branch = last(y)
    gain = 1.0
    if attention:
        descriptor = None
        if blocks._narrower(y, width):
            # mean(conv3(y)) = conv3(mean(y)) for a 1x1 convolution, and y is 4x narrower.
            pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_eca_pool")(y)
            descriptor = last(pooled)
        branch = ECA(kernel_size, name=f"{name}_eca")(branch, descriptor=descriptor)
        gain = ATTENTION_GAIN
    return ScaledResidual(ALPHA, gain, name=f"{name}_add")([shortcut, branch])


def _stages(x, variant, kernel_sizes, attention):
    in_width = STEM_WIDTHS[-1]
    expected_variance = 1.0
    stages = zip(STAGE_WIDTHS, STAGE_STRIDES, variant.depths, kernel_sizes, strict=True)
    for stage, (width, stride, depth, kernel_size) in enumerate(stages, start=1):
        for index in range(depth):
            beta = expected_variance**-0.5
            name = f"stage{stage}_block{index + 1}"
            block_stride = stride if index == 0 else 1
            x = _block(x, in_width, width, block_stride, beta, kernel_size, attention, name)
            if index == 0:
                expected_variance = 1.0  # the first block's shortcut re-normalises the stream
            expected_variance += ALPHA**2
            in_width = width
    return x


def pyramid_layers(layer_names):
    """``{"P1": ..., "P5": ...}`` as timm's ``features_only`` returns them for NFNets: the stem's
    third convolution (stride 2), the last block of stages 1-3 (strides 4-16), and the final 1x1
    convolution (stride 32)."""
    names = set(layer_names)
    pyramid = {"P1": "stem_conv3"}
    for stage in (1, 2, 3):
        depth = sum(1 for name in names if re.fullmatch(rf"stage{stage}_block\d+_add", name))
        pyramid[f"P{stage + 1}"] = f"stage{stage}_block{depth}_add"
    pyramid["P5"] = "final_conv"
    return pyramid


def build_nfnet(model_name, *, kernel_sizes=None, attention=True, **arguments):
    """Builds the registered ECA-NFNet ``model_name``; ``arguments`` are keras.applications'."""
    from eca_keras.applications import builder

    variant = NFNET_VARIANTS[model_name]
    kernel_sizes = builder.check_kernel_sizes(kernel_sizes, KERNEL_SIZES, model_name)
    builder.check_pretrained_variant(
        arguments["weights"], model_name, attention, kernel_sizes, KERNEL_SIZES
    )

    def body(inputs):
        x = _stages(_stem(inputs), variant, kernel_sizes, attention)
        x = _conv(int(STAGE_WIDTHS[-1] * variant.final_multiplier), 1, "final_conv")(x)
        return _silu("final_act")(x)

    default_size = registry.model_info(model_name).default_size
    return builder.build_application(model_name, body, default_size=default_size, **arguments)


def register_nfnet(name, public_name, variant, *, params, summary, weights=(), **facts):
    """One row: registers ECA-NFNet ``name`` (``facts``: the other :class:`ModelInfo` fields)
    and returns its public constructor."""
    constructor = constructors.register_model(
        build_nfnet, "nfnet", name, public_name, params=params, summary=summary, weights=weights,
        kernel_sizes=KERNEL_SIZES, module=__name__, origin="timm", reference="timm", **facts,
    )  # fmt: skip
    NFNET_VARIANTS[name] = variant
    return constructor


_SUMMARY = (
    "timm's {} (ECA-NFNet-{}: normalisation-free, scaled weight-standardised convolutions, SiLU, "
    "ECA in every block; {} blocks per stage)."
)


def _row(level, depths, final_multiplier, params, size, tag, *results):
    """ECA-NFNet-L``level``: blocks per stage, final width multiplier, parameters, default size,
    timm's tag, then ``timm_weights``' (crop, top-1, top-5, (test size, crop, top-1, top-5))."""
    name = f"eca_nfnet_l{level}"
    blocks = "-".join(map(str, depths))
    return register_nfnet(
        name, f"ECANFNetL{level}", NFNetVariant(depths, final_multiplier), params=params,
        default_size=size, summary=_SUMMARY.format(name, f"L{level}", blocks),
        weights=[timm_weights(name, tag, size, *results)],
    )  # fmt: skip


ECANFNetL0 = _row(0, (1, 2, 6, 3), 1.5, 24_143_924, 224, "ra2_in1k",
                  0.9, 81.762, 95.994, (288, 1.0, 82.590, 96.486))  # fmt: skip
ECANFNetL1 = _row(1, (2, 4, 12, 6), 2.0, 41_407_728, 256, "ra2_in1k",
                  0.9, 83.264, 96.684, (320, 1.0, 84.062, 97.026))  # fmt: skip
ECANFNetL2 = _row(2, (3, 6, 18, 9), 2.0, 56_722_348, 320, "ra3_in1k",
                  0.9, 84.170, 97.016, (384, 1.0, 84.710, 97.256))  # fmt: skip

__all__ = [registry.model_info(name).constructor.__name__ for name in NFNET_VARIANTS]
