"""Models by name: ``get_model("eca_resnet50", weights=None)``, ``list_models()``."""

import dataclasses

from eca_keras.applications import mobilenet_v2, resnet


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a registered model is, without building it."""

    name: str
    constructor: object
    params: int  # trainable parameters with the 1000-class head
    default_size: int
    source: str  # "official" or "timm"
    head_dropout: float = 0.0  # dropout before the classifier (ECA-MobileNetV2: 0.25)


_MODELS = {
    **{
        name: ModelInfo(
            name,
            getattr(resnet, public_name),
            resnet.RESNET_VARIANTS[name].params,
            resnet.RESNET_VARIANTS[name].default_size,
            resnet.RESNET_VARIANTS[name].source,
        )
        for name, public_name in (
            ("eca_resnet18", "ECAResNet18"),
            ("eca_resnet34", "ECAResNet34"),
            ("eca_resnet50", "ECAResNet50"),
            ("eca_resnet101", "ECAResNet101"),
            ("eca_resnet152", "ECAResNet152"),
            ("ecaresnet26t", "ECAResNet26T"),
            ("ecaresnet50d", "ECAResNet50D"),
            ("ecaresnet50t", "ECAResNet50T"),
            ("ecaresnetlight", "ECAResNetLight"),
            ("ecaresnet101d", "ECAResNet101D"),
            ("ecaresnet269d", "ECAResNet269D"),
        )
    },
    mobilenet_v2.MODEL_NAME: ModelInfo(
        mobilenet_v2.MODEL_NAME,
        mobilenet_v2.ECAMobileNetV2,
        mobilenet_v2.PARAMS,
        224,
        "official",
        mobilenet_v2.DROPOUT_RATE,
    ),
}


def list_models():
    """Names of every registered model, official ones first."""
    return list(_MODELS)


def model_info(name):
    """The :class:`ModelInfo` of a registered model."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}. Registered models: {', '.join(_MODELS)}."
        ) from None


def get_model(name, **kwargs):
    """Builds the registered model ``name``; keyword arguments go to its constructor."""
    return model_info(name).constructor(**kwargs)
