"""timm's "bring your own blocks" ECA networks: ECA-ResNet33-TS, ECA-ResNeXt26-TS, and the
convolution + self-attention hybrids ECA-BoTNeXt26-TS (bottleneck attention) and
ECA-HaloNeXt26-TS (halo attention). One builder; every variant is one :func:`register_byob` row
at the end of this file.

The layout is timm's ``ByobNet``: a tiered stem (3x3 convolutions 24-32-64, SiLU, then a 3x3/2 max
pool, or a strided third convolution), four stages of bottleneck blocks (1x1 -> 3x3, grouped in
the ResNeXts -> ECA -> 1x1, SiLU after the residual add) with ECA on the block's middle width
(timm's ``attn_last=False``), a 1x1 strided convolution + BN shortcut where the shape changes,
and in the hybrids self-attention blocks (1x1 -> attention -> BN + SiLU -> 1x1, no ECA) in
place of the later bottlenecks. ECA's kernel size comes from the middle width, at least 3.

Layer names (the contract that checkpoint converters map onto; ``S`` is the stage 1..4 (timm's
``stages.{S-1}``), ``B`` the block 1..n):

- stem: ``stem_{1,2,3}_{pad,conv,bn,silu}`` (``pad`` only before a strided convolution), then
  ``stem_pool`` where the stem pools.
- bottleneck block: ``stageS_blockB_{1,2,3}_{pad,conv,bn,silu}`` (``_3`` has no activation), the
  shortcut ``stageS_blockB_0_{conv,bn}``, the attention ``stageS_blockB_eca``, then
  ``stageS_blockB_add`` and ``stageS_blockB_out``.
- self-attention block: ``stageS_blockB_1_*``, ``stageS_blockB_attn`` (a
  :class:`~eca_keras.layers.BottleneckAttention` or :class:`~eca_keras.layers.HaloAttention`),
  ``stageS_blockB_attn_{bn,silu}``, ``stageS_blockB_3_{conv,bn}``, shortcut, add and out as above.
- ``top_{conv,bn,silu}`` (the 1x1 convolution before the head, where the model has one), then
  ``avg_pool`` and ``predictions`` (or ``avg_pool`` / ``max_pool`` for ``pooling``).
"""

import dataclasses
import math
import re

from eca_keras.applications import constructors, registry
from eca_keras.applications.registry import timm_weights


@dataclasses.dataclass(frozen=True)
class ByobVariant:
    """One timm ByobNet architecture with ECA."""

    blocks: tuple  # per stage, each block's kind: "bottle" or "attn" (self-attention)
    widths: tuple  # output channels per stage
    kernel_sizes: tuple  # ECA kernel size per stage with bottlenecks (timm: from the middle width)
    group_width: int = 0  # channels per group of the 3x3 convolution (0: not grouped)
    stem_pool: bool = True  # 3x3/2 max pool after the stem, else a strided third stem conv
    top_width: int = 0  # a 1x1 conv + BN + SiLU to this width before the head (0: none)
    self_attention: str = ""  # "bottleneck" or "halo" for the "attn" blocks
    attention_args: tuple = ()  # (argument, value) pairs for the self-attention layer
    fixed_size: int | None = None  # the only input size (bottleneck attention's embeddings)


BYOB_VARIANTS = {}  # name -> ByobVariant, filled by register_byob

STEM_WIDTHS = (24, 32, 64)  # timm's "tiered" stem for stem_chs=64: 3/8, 1/2 and all of it
STAGE_STRIDES = (1, 2, 2, 2)
BOTTLE_RATIO = 0.25
DEFAULT_SIZE = 256


def _conv_bn(x, filters, kernel_size, strides, name, activation=True, groups=1, zero_gamma=False):
    """``[pad] -> conv -> BN [-> SiLU]`` with PyTorch's symmetric padding (timm's ConvNormAct)."""
    from keras import layers

    from eca_keras.applications import blocks

    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides,
        padding,
        groups=groups,
        use_bias=False,
        kernel_initializer=_conv_initializer(groups),
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(
        axis=blocks.channel_axis(),
        epsilon=blocks.BN_EPSILON,
        momentum=blocks.BN_MOMENTUM,
        # timm's zero_init_last: a residual branch starts as nothing, the block as its shortcut.
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=f"{name}_bn",
    )(x)
    if activation:
        x = layers.Activation("silu", name=f"{name}_silu")(x)
    return x


def _conv_initializer(groups):
    """timm's ByobNet initialisation: N(0, 2 / fan_out), fan_out counted per group."""
    import keras

    return keras.initializers.VarianceScaling(2.0 * groups, "fan_out", "untruncated_normal")


def _stem(x, variant):
    from eca_keras.layers import PaddedMaxPooling2D

    first, second, third = STEM_WIDTHS
    x = _conv_bn(x, first, 3, 2, "stem_1")
    x = _conv_bn(x, second, 3, 1, "stem_2")
    x = _conv_bn(x, third, 3, 1 if variant.stem_pool else 2, "stem_3")
    if variant.stem_pool:
        x = PaddedMaxPooling2D(3, 2, padding=1, name="stem_pool")(x)
    return x


def _self_attention(variant, strides, name):
    from eca_keras.layers import BottleneckAttention, HaloAttention

    layer = {"bottleneck": BottleneckAttention, "halo": HaloAttention}[variant.self_attention]
    return layer(strides=strides, name=name, **dict(variant.attention_args))


def _block(x, variant, kind, filters, stride, kernel_size, attention, name):
    """A bottleneck block (ECA on the middle width) or a self-attention block."""
    from keras import layers

    from eca_keras import ECA
    from eca_keras.applications import blocks

    middle = int(filters * BOTTLE_RATIO)
    groups = middle // variant.group_width if variant.group_width else 1
    if stride != 1 or x.shape[blocks.channel_axis()] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_0", activation=False)
    else:
        shortcut = x
    y = _conv_bn(x, middle, 1, 1, f"{name}_1")
    if kind == "bottle":
        y = _conv_bn(y, middle, 3, stride, f"{name}_2", groups=groups)
        if attention:
            y = ECA(kernel_size, name=f"{name}_eca")(y)
    else:
        y = _self_attention(variant, stride, f"{name}_attn")(y)
        y = blocks.batch_norm(f"{name}_attn_bn")(y)
        y = layers.Activation("silu", name=f"{name}_attn_silu")(y)
    y = _conv_bn(y, filters, 1, 1, f"{name}_3", activation=False, zero_gamma=True)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("silu", name=f"{name}_out")(y)


def _stages(x, variant, kernel_sizes, attention):
    eca_kernel_sizes = iter(kernel_sizes)
    for stage, (kinds, filters, stride) in enumerate(
        zip(variant.blocks, variant.widths, STAGE_STRIDES, strict=True), start=1
    ):
        kernel_size = next(eca_kernel_sizes) if "bottle" in kinds else None
        for index, kind in enumerate(kinds):
            name = f"stage{stage}_block{index + 1}"
            block_stride = stride if index == 0 else 1
            x = _block(x, variant, kind, filters, block_stride, kernel_size, attention, name)
    if variant.top_width:
        x = _conv_bn(x, variant.top_width, 1, 1, "top")
    return x


def attention_strides(variant):
    """The network strides at which the self-attention blocks read their input (a stage's first
    block reads the previous stage's output; every stride-2 step gives ``ceil(size / 2)``, so the
    map at stride ``s`` has side ``ceil(size / s)``)."""
    strides, stride = set(), 4  # the stem's
    for kinds, stage_stride in zip(variant.blocks, STAGE_STRIDES, strict=True):
        strides.update(
            stride if index == 0 else stride * stage_stride
            for index, kind in enumerate(kinds)
            if kind == "attn"
        )
        stride *= stage_stride
    return sorted(strides)


def check_input_size(model_name, variant, spatial):
    """The hybrids' input-size rules, in one line naming the model and the sizes that work."""
    if not variant.self_attention:
        return
    if None in spatial:
        raise ValueError(
            f"{model_name} needs a fixed input height and width (its self-attention layers are "
            f"sized by them); pass input_shape, e.g. ({DEFAULT_SIZE}, {DEFAULT_SIZE}, 3). "
            f"Received a {spatial[0]}x{spatial[1]} input."
        )
    if variant.fixed_size:
        if tuple(spatial) != (variant.fixed_size,) * 2:
            raise ValueError(
                f"{model_name} takes {variant.fixed_size}x{variant.fixed_size} images only (the "
                "relative position embeddings of its bottleneck attention are sized for them). "
                f"Received a {spatial[0]}x{spatial[1]} input."
            )
        return
    block = dict(variant.attention_args)["block_size"]
    strides = attention_strides(variant)
    if any(math.ceil(side / stride) % block for side in spatial for stride in strides):
        where = " and ".join(f"ceil(size / {stride})" for stride in strides)
        raise ValueError(
            f"{model_name} cuts its feature maps into {block}x{block} halo blocks: {where} must "
            f"be multiples of {block} (e.g. size 256 or 512). "
            f"Received a {spatial[0]}x{spatial[1]} input."
        )


def build_byob(model_name, *, kernel_sizes=None, attention=True, **arguments):
    """Builds the registered ByobNet ``model_name``; ``arguments`` are keras.applications'."""
    import keras

    from eca_keras.applications import builder

    variant = BYOB_VARIANTS[model_name]
    kernel_sizes = builder.check_kernel_sizes(kernel_sizes, variant.kernel_sizes, model_name)
    builder.check_pretrained_variant(
        arguments["weights"], model_name, attention, kernel_sizes, variant.kernel_sizes
    )
    default_size = registry.model_info(model_name).default_size
    if variant.self_attention and arguments["input_shape"] is None:
        if arguments["input_tensor"] is None:  # a fixed size, even without the head
            channels_first = keras.config.image_data_format() == "channels_first"
            square = (default_size, default_size)
            arguments["input_shape"] = (3, *square) if channels_first else (*square, 3)

    def body(inputs):
        channels_first = keras.config.image_data_format() == "channels_first"
        check_input_size(
            model_name, variant, inputs.shape[2:4] if channels_first else inputs.shape[1:3]
        )
        return _stages(_stem(inputs, variant), variant, kernel_sizes, attention)

    return builder.build_application(model_name, body, default_size=default_size, **arguments)


_INPUT_SIZE_DOC = {
    "": "",
    "bottleneck": " Input size: fixed at {size}x{size} (the relative position embeddings of its "
    "bottleneck attention are sized for it): ``input_shape`` defaults to ``({size}, {size}, 3)`` "
    "with or without the head, and any other size raises ``ValueError``.",
    "halo": " Input size: fixed when built (the halo blocks are cut from known sizes): "
    "``input_shape`` defaults to ``({size}, {size}, 3)`` with or without the head; other sizes "
    "must give feature maps divisible by the 8x8 halo blocks at strides 16 and 32 (256, 512, "
    "...), else ``ValueError``.",
}
_ATTENTION_DOC = {
    "": constructors.ATTENTION_DOC,
    "bottleneck": """
    attention: ``False`` removes ECA from the bottleneck blocks (the bottleneck self-attention
        stays: it is the architecture, not the channel attention under study).""",
}
_ATTENTION_DOC["halo"] = _ATTENTION_DOC["bottleneck"].replace("bottleneck self", "halo self")


def pyramid_layers(layer_names):
    """``{"P1": ..., "P5": ...}`` as timm's ``features_only`` returns them for ByobNets: the stem's
    last activation at stride 2, the last block of stages 1-3, and the last feature map (the
    ``top`` convolution where there is one)."""
    names = set(layer_names)
    pyramid = {"P1": "stem_3_silu" if "stem_pool" in names else "stem_2_silu"}
    for stage in (1, 2, 3, 4):
        depth = sum(1 for name in names if re.fullmatch(rf"stage{stage}_block\d+_out", name))
        pyramid[f"P{stage + 1}"] = f"stage{stage}_block{depth}_out"
    if "top_silu" in names:
        pyramid["P5"] = "top_silu"
    return pyramid


def register_byob(name, public_name, variant, *, params, summary, weights=(), **facts):
    """One row: registers ByobNet ``name`` (``facts``: the other :class:`ModelInfo` fields,
    ``default_size`` 256 unless given) and returns its public constructor."""
    facts.setdefault("default_size", DEFAULT_SIZE)
    size_rules = _INPUT_SIZE_DOC.get(variant.self_attention, "").format(size=facts["default_size"])
    constructor = constructors.register_model(
        build_byob, "byob", name, public_name, params=params, summary=summary + size_rules,
        weights=weights, kernel_sizes=variant.kernel_sizes, unit="stage with ECA",
        attention_doc=_ATTENTION_DOC[variant.self_attention], module=__name__, **facts,
    )  # fmt: skip
    BYOB_VARIANTS[name] = variant
    return constructor


_TIMM_FACTS = {"origin": "timm", "reference": "timm"}
_BOTTLENECKS = (("bottle",) * 2, ("bottle",) * 2, ("bottle",) * 2, ("bottle",) * 2)
_HYBRID = (("bottle",) * 2, ("bottle",) * 2, ("bottle", "attn"), ("attn",) * 2)


def _row(name, public_name, variant, params, summary, tag, *results):
    """A row: ``timm_weights``' arguments after the name and tag are ``results``."""
    return register_byob(
        name, public_name, variant, params=params, summary=summary,
        weights=[timm_weights(name, tag, DEFAULT_SIZE, *results)], **_TIMM_FACTS,
    )  # fmt: skip


ECAResNet33TS = _row("eca_resnet33ts", "ECAResNet33TS", ByobVariant(
    (("bottle",) * 2, ("bottle",) * 3, ("bottle",) * 3, ("bottle",) * 2),
    (256, 512, 1536, 1536), (3, 5, 5, 5), stem_pool=False, top_width=1280), 19_676_302,
    "timm's eca_resnet33ts: a 33-layer ResNet with a tiered stem, SiLU and ECA on each "
    "bottleneck's middle width, and a 1280-wide 1x1 convolution before the head.",
    "ra2_in1k", 0.9, 80.084, 94.980, (288, 1.0, 80.716, 95.382))  # fmt: skip
ECAResNeXt26TS = _row("eca_resnext26ts", "ECAResNeXt26TS", ByobVariant(
    _BOTTLENECKS, (256, 512, 1024, 2048), (3, 5, 5, 5), group_width=32), 10_297_988,
    "timm's eca_resnext26ts: a 26-layer ResNeXt (3x3 convolutions in groups of 32 channels) "
    "with a tiered stem, SiLU and ECA on each bottleneck's middle width.",
    "ch_in1k", 0.9, 77.446, 93.574, (288, 1.0, 78.020, 93.932))  # fmt: skip
ECABotNeXt26TS = _row("eca_botnext26ts_256", "ECABotNeXt26TS", ByobVariant(
    _HYBRID, (256, 512, 1024, 2048), (3, 5, 5), group_width=16, self_attention="bottleneck",
    attention_args=(("num_heads", 4), ("key_dim", 16)), fixed_size=256), 10_593_301,
    "timm's eca_botnext26ts_256: ECA-ResNeXt26-TS (groups of 16 channels) with bottleneck "
    "self-attention (4 heads, relative position logits) in the last three blocks.",
    "c1_in1k", 0.95, 79.262, 94.600)  # fmt: skip
ECAHaloNeXt26TS = _row("eca_halonext26ts", "ECAHaloNeXt26TS", ByobVariant(
    _HYBRID, (256, 512, 1024, 2048), (3, 5, 5), group_width=16, self_attention="halo",
    attention_args=(("num_heads", 8), ("key_dim", 16), ("block_size", 8), ("halo_size", 2))),
    10_756_885,
    "timm's eca_halonext26ts: ECA-ResNeXt26-TS (groups of 16 channels) with halo "
    "self-attention (8 heads, 8x8 blocks with a 2-pixel halo) in the last three blocks.",
    "c1_in1k", 0.94, 79.518, 94.582)  # fmt: skip

__all__ = [registry.model_info(name).constructor.__name__ for name in BYOB_VARIANTS]
