"""What every constructor shares: argument checks, the input, the head, and weight loading."""

import keras
from keras import layers

from eca_keras.applications import imagenet_utils
from eca_keras.applications.weights import load_model_weights
from eca_keras.layers import ECA, DescriptorBatchNormalization

POOLINGS = (None, "avg", "max")

BN_EPSILON = 1e-5  # PyTorch's BatchNorm default; the released statistics assume it.
BN_MOMENTUM = 0.9  # PyTorch's momentum=0.1 in Keras' convention.


def conv_initializer():
    """PyTorch's (torchvision's) convolution initialisation, so that training from scratch starts
    where the paper did. A new instance per layer: an unseeded Keras initializer draws its seed
    once, so a shared instance would give equal-shaped layers equal kernels and ignore
    ``keras.utils.set_random_seed``."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def channel_axis():
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def _check_arguments(
    include_top, weights, input_shape, pooling, classes, classifier_activation, default_size
):
    """Validates like keras.applications and returns the resolved input shape."""
    imagenet_utils.validate_weights_argument(weights, include_top, classes)
    if pooling not in POOLINGS:
        raise ValueError(
            f"`pooling` should be one of {POOLINGS} (used when `include_top=False`). "
            f"Received: pooling={pooling!r}"
        )
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
    return imagenet_utils.obtain_input_shape(
        input_shape,
        default_size=default_size,
        min_size=32,
        data_format=keras.config.image_data_format(),
        require_flatten=include_top,
        weights=weights,
    )


def _model_input(input_tensor, input_shape):
    """The model's input layer, wrapping a user's ``input_tensor`` as keras.applications does."""
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        return layers.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor


def build_application(
    model_name,
    body,
    *,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    name,
    default_size,
    dropout_rate=0.0,
):
    """The keras.applications skeleton every constructor shares.

    Validates the arguments, makes the input, runs ``body(inputs) -> features``, adds the head
    (``avg_pool`` [-> ``top_dropout``] -> ``predictions``) or the pooling, and loads ``weights``.
    """
    input_shape = _check_arguments(
        include_top, weights, input_shape, pooling, classes, classifier_activation, default_size
    )
    img_input = _model_input(input_tensor, input_shape)
    x = body(img_input)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_model_weights(model, model_name, weights)
    return model


def conv_bn(x, filters, kernel_size, strides, name, activation="relu", depthwise=False):
    """``[pad] -> conv -> BN [-> activation]`` with PyTorch's symmetric padding.

    Layers are named ``{name}_pad``, ``{name}_conv``, ``{name}_bn``, ``{name}_relu``. Strided
    convolutions pad ``kernel_size // 2`` on every side explicitly (Keras' "same" would pad only
    bottom/right); unstrided odd kernels use "same", which is already symmetric.
    """
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = _conv(filters, kernel_size, strides, padding, f"{name}_conv", depthwise)(x)
    x = _batch_norm(f"{name}_bn")(x)
    if activation == "relu":
        x = layers.ReLU(name=f"{name}_relu")(x)
    elif activation == "relu6":
        x = layers.ReLU(6.0, name=f"{name}_relu")(x)
    return x


def conv_bn_eca(x, filters, kernel_size, name, eca_kernel_size, eca_name):
    """A block's last ``conv (stride 1) -> BN``, then ECA, handed a cheap channel descriptor.

    Layers as :func:`conv_bn` (no activation; the BatchNormalization is a
    :class:`~eca_keras.layers.DescriptorBatchNormalization`), then ``ECA`` named ``eca_name``
    and the pooling ``{eca_name}_pool``. In inference the mean of a BatchNorm's output is the
    BatchNorm of the mean of its input, and the mean of a pointwise convolution's output is the
    convolution of the mean of its input. So the descriptor is pooled from the convolution's
    input where that is the smaller read (the bottlenecks' early stages), else from its output,
    never from the BatchNorm's output: under XLA that one would be written to memory only to be
    read back for the mean. ECA uses the descriptor in inference under XLA; elsewhere the
    branch is pruned from the graph.
    """
    conv = _conv(filters, kernel_size, 1, "same", f"{name}_conv")
    convolved = conv(x)
    pool = layers.GlobalAveragePooling2D(keepdims=True, name=f"{eca_name}_pool")
    if kernel_size == 1 and _narrower(x, filters):
        pooled = conv(pool(x))
    else:
        pooled = pool(convolved)
    batch_norm = _batch_norm(f"{name}_bn", DescriptorBatchNormalization)
    y = batch_norm(convolved)  # first, so that the layer's `output` is this one
    descriptor = batch_norm(pooled, pooled=True)
    return ECA(eca_kernel_size, name=eca_name)(y, descriptor=descriptor)


def _narrower(x, filters):
    """Whether pooling a pointwise convolution's input (then convolving it) reads less than
    pooling its output, per image: ``C_in * HW + C_in * C_out < C_out * HW``."""
    if channel_axis() == -1:
        height, width, channels = x.shape[1:]
    else:
        channels, height, width = x.shape[1:]
    if None in (height, width, channels):
        return False
    positions = height * width
    return channels * positions + channels * filters < filters * positions


def _conv(filters, kernel_size, strides, padding, name, depthwise=False):
    if depthwise:
        cls, arguments = layers.DepthwiseConv2D, {"depthwise_initializer": conv_initializer()}
    else:
        cls = layers.Conv2D
        arguments = {"filters": filters, "kernel_initializer": conv_initializer()}
    return cls(
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        name=name,
        **arguments,
    )


def _batch_norm(name, cls=layers.BatchNormalization):
    return cls(axis=channel_axis(), epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def check_kernel_sizes(kernel_sizes, default, model_name):
    """Resolves a per-stage ``kernel_sizes`` override (ECA's own checks reject even sizes)."""
    if kernel_sizes is None:
        return tuple(default)
    kernel_sizes = tuple(kernel_sizes)
    if len(kernel_sizes) != len(default):
        raise ValueError(
            f"`kernel_sizes` for {model_name} needs one entry per stage ({len(default)}). "
            f"Received: kernel_sizes={kernel_sizes}"
        )
    return kernel_sizes


def check_pretrained_variant(weights, model_name, attention, kernel_sizes, default):
    """ImageNet weights exist only for the released architecture."""
    if weights != "imagenet":
        return
    if not attention:
        raise ValueError(
            f"No pretrained weights exist for {model_name} with `attention=False` "
            "(the plain baseline). Use weights=None."
        )
    if tuple(kernel_sizes) != tuple(default):
        raise ValueError(
            f"The pretrained {model_name} weights use ECA kernel sizes {tuple(default)}. "
            f"Received kernel_sizes={tuple(kernel_sizes)}; use weights=None to train other sizes."
        )


CONSTRUCTOR_DOC = """Instantiates the {title} architecture.

{summary}

Args:
    include_top: whether to include the classification head (global average pooling and
        a dense layer of ``classes`` units).
    weights: ``None`` (random initialization), ``"imagenet"`` (pre-training on ImageNet,
        downloaded once, hash-checked and cached under ``KERAS_HOME``), or the path to a
        weights file (a converted ``.weights.h5`` or an upstream checkpoint).
    input_tensor: optional Keras tensor (output of ``keras.Input()``) to use as image input.
    input_shape: optional shape tuple, only to be specified if ``include_top`` is False;
        it should have exactly 3 input channels with pretrained weights, and width and height
        no smaller than 32. Default: ``{default_shape}``.
    pooling: optional pooling mode when ``include_top`` is False: ``None`` (the 4D output of
        the last block), ``"avg"`` (global average pooling) or ``"max"`` (global max pooling).
    classes: number of classes, only with ``include_top=True`` and no ``weights``.
    classifier_activation: activation of the top layer (``None`` returns logits); only ``None``
        or ``"softmax"`` with pretrained weights.
    name: the model's name.
    kernel_sizes: ECA kernel size per {unit} (odd ints), default the released ones:
        ``{kernel_sizes}``.
    attention: ``False`` builds the same network without ECA (the paper's baseline).{extra}

Returns:
    A ``keras.Model``. Inputs are RGB images in ``[0, 255]`` passed through
    ``eca_keras.applications.preprocess_input``.
"""


def make_constructor(build, model_name, public_name, title, summary, kernel_sizes, default_size):
    """A keras.applications-style constructor for the registered ``model_name``."""

    def constructor(
        include_top=True,
        weights="imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=model_name,
        kernel_sizes=None,
        attention=True,
    ):
        return build(
            model_name,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
            kernel_sizes=kernel_sizes,
            attention=attention,
        )

    constructor.__name__ = constructor.__qualname__ = public_name
    constructor.__doc__ = CONSTRUCTOR_DOC.format(
        title=title,
        summary=summary,
        default_shape=f"({default_size}, {default_size}, 3)",
        unit="stage",
        kernel_sizes=tuple(kernel_sizes),
        extra="",
    )
    return constructor
