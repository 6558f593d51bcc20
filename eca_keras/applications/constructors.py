"""keras.applications-style public constructors, made from a family's builder and a row's facts.

Every constructor takes ``keras.applications.ResNet50``'s arguments, then the family's own
(``kernel_sizes``, ``attention``, ``alpha`` ...), and shares one docstring template. Making one
imports neither Keras nor TensorFlow; calling it builds the model.
"""

import inspect

from eca_keras.applications import registry

KERAS_APPLICATIONS_ARGUMENTS = (
    ("include_top", True),
    ("weights", "imagenet"),
    ("input_tensor", None),
    ("input_shape", None),
    ("pooling", None),
    ("classes", 1000),
    ("classifier_activation", "softmax"),
)

DOC = """Instantiates the {title} architecture.

{summary}

Args:
    include_top: whether to include the classification head (global average pooling and
        a dense layer of ``classes`` units).
    weights: ``None`` (random initialization), ``"imagenet"`` (pre-training on ImageNet,
        downloaded once, hash-checked and cached under ``KERAS_HOME``), the tag of another
        registered ImageNet checkpoint ({tags}), or the path to a weights file (a converted
        ``.weights.h5`` or an upstream checkpoint).
    input_tensor: optional Keras tensor (output of ``keras.Input()``) to use as image input.
    input_shape: optional shape tuple, only to be specified if ``include_top`` is False;
        it should have exactly 3 input channels with pretrained weights, and width and height
        no smaller than 32. Default: ``{default_shape}``.
    pooling: optional pooling mode when ``include_top`` is False: ``None`` (the 4D output of
        the last block), ``"avg"`` (global average pooling) or ``"max"`` (global max pooling).
    classes: number of classes, only with ``include_top=True`` and no ``weights``.
    classifier_activation: activation of the top layer (``None`` returns logits); only ``None``
        or ``"softmax"`` with pretrained weights.
    name: the model's name.{extra}

Returns:
    A ``keras.Model``. Inputs are RGB images in ``[0, 255]`` passed through
    ``eca_keras.applications.preprocess_input``.
"""

KERNEL_SIZES_DOC = """
    kernel_sizes: ECA kernel size per {unit} (odd ints), default the released ones:
        ``{kernel_sizes}``."""
ATTENTION_DOC = """
    attention: ``False`` builds the same network without ECA (the paper's baseline)."""


def make_constructor(build, model_name, public_name, doc, extras=(), module=None):
    """A constructor ``public_name(include_top=True, weights="imagenet", ..., name=model_name,
    **extras)`` that calls ``build(model_name, **arguments)``.

    ``extras``: ``(argument, default)`` pairs after keras.applications' own; ``doc``: the
    docstring.
    """
    arguments = [*KERAS_APPLICATIONS_ARGUMENTS, ("name", model_name), *extras]
    signature = inspect.Signature(
        [
            inspect.Parameter(argument, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
            for argument, default in arguments
        ]
    )

    def constructor(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return build(model_name, **bound.arguments)

    constructor.__name__ = constructor.__qualname__ = public_name
    constructor.__signature__ = signature
    constructor.__doc__ = doc
    if module:
        constructor.__module__ = module
    return constructor


def constructor_doc(title, summary, default_size, weights=(), extra=""):
    """The shared docstring, filled in for one model."""
    tags = ", ".join(f'``"{entry.tag}"``' for entry in weights) or "none registered"
    return DOC.format(
        title=title,
        summary=summary,
        default_shape=f"({default_size}, {default_size}, 3)",
        tags=tags,
        extra=extra,
    )


STANDARD_EXTRAS = (("kernel_sizes", None), ("attention", True))


def register_model(build, family, name, public_name, *, params, summary, weights=(), **options):
    """One row of a family: the public constructor of ``name`` (built by ``build``) with its
    docstring, registered with the rest of its :class:`~registry.ModelInfo` facts; returns the
    constructor.

    ``options``: ``kernel_sizes`` (the default ones, for the docstring) and ``unit`` (what one
    kernel size covers, default "stage"), ``extras`` (the constructor's own arguments, default
    ``kernel_sizes`` and ``attention``), ``attention_doc`` (what ``attention=False`` builds),
    ``extra_doc`` (more argument docs), ``module``, and the
    other ModelInfo fields (``default_size`` 224 unless given, ``origin``, ``reference``...).
    """
    kernel_sizes = options.pop("kernel_sizes")
    unit = options.pop("unit", "stage")
    extras = options.pop("extras", STANDARD_EXTRAS)
    extra_doc = options.pop("extra_doc", "")
    attention_doc = options.pop("attention_doc", ATTENTION_DOC)
    module = options.pop("module", None)
    default_size = options.setdefault("default_size", 224)
    extra = KERNEL_SIZES_DOC.format(unit=unit, kernel_sizes=tuple(kernel_sizes)) + attention_doc
    doc = constructor_doc(public_name, summary, default_size, weights, extra=extra + extra_doc)
    constructor = make_constructor(build, name, public_name, doc, extras, module)
    info = registry.ModelInfo(
        name, constructor, params, family=family, weights=weights, summary=summary, **options
    )
    registry.register(info)
    return constructor
