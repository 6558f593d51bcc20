"""The keras.applications skeleton every family shares: argument checks, the input, the head,
and loading ``weights``."""

import keras
from keras import layers

from eca_keras.applications import imagenet_utils, registry
from eca_keras.applications.weights import is_preset, load_model_weights

POOLINGS = (None, "avg", "max")


def pretrained_entry(model_name, weights):
    """The registered :class:`~registry.WeightEntry` that ``weights`` names (``"imagenet"`` or a
    tag of ``model_name``), or None for random weights and files."""
    if weights is None or not registry.is_registered(model_name):
        return None
    info = registry.model_info(model_name)
    if weights == "imagenet":
        return info.weight_entry() if info.weights else None
    if isinstance(weights, str):
        return next((e for e in info.weights if weights in (e.tag, e.name)), None)
    return None


def _check_arguments(
    model_name, default_size, *, include_top, weights, input_shape, pooling, classes,
    classifier_activation, **_,
):  # fmt: skip
    """Validates like keras.applications and returns the resolved input shape."""
    entry = pretrained_entry(model_name, weights)
    # keras.applications' checks see a registered tag as "imagenet", and a preset as a file
    # (any classes, any size); the fixed input size of a classifier with pretrained weights is
    # any size the weights were published at.
    as_keras = "imagenet" if entry else (None if is_preset(weights) else weights)
    if entry:
        default_size = _published_size(entry, input_shape)
    imagenet_utils.validate_weights_argument(as_keras, include_top, classes)
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
        weights=as_keras,
    )


def _published_size(entry, input_shape):
    """The size a pretrained classifier is built at: ``input_shape``'s, if the weights were
    published at it (their own size or timm's test size), else their own size."""
    sizes = {entry.eval.input_size, entry.test_eval.input_size, *(r.size for r in entry.results)}
    if input_shape is not None and len(input_shape) == 3:
        square = [d for d in input_shape if d != 3]
        if len(set(square)) == 1 and square[0] in sizes:
            return square[0]
    return entry.eval.input_size


def _model_input(input_tensor, input_shape):
    """The model's input layer, wrapping a user's ``input_tensor`` as keras.applications does."""
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        return layers.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor


def build_application(model_name, body, *, default_size, dropout_rate=0.0, **arguments):
    """Validates keras.applications' ``arguments`` (``include_top``, ``weights``,
    ``input_tensor``, ``input_shape``, ``pooling``, ``classes``, ``classifier_activation``,
    ``name``), makes the input, runs ``body(inputs) -> features``, adds the head (``avg_pool``
    [-> ``top_dropout``] -> ``predictions``) or the pooling, and loads ``weights``.
    """
    input_shape = _check_arguments(model_name, default_size, **arguments)
    include_top, weights = arguments["include_top"], arguments["weights"]
    pooling, input_tensor = arguments["pooling"], arguments["input_tensor"]
    classes, classifier_activation = arguments["classes"], arguments["classifier_activation"]
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
    model = keras.Model(inputs, x, name=arguments["name"])
    if weights is not None:
        load_model_weights(model, model_name, weights)
    return model


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
    if pretrained_entry(model_name, weights) is None:
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
