"""The model registry: what every model is, without building it; imports no model family.

Each family module (``resnet``, ``mobilenet_v2``, ...) declares its variants as rows and calls
:func:`register` once per row with a :class:`ModelInfo`: its constructor, default input size,
parameter count, ImageNet weight entries (:class:`WeightEntry`, each with its evaluation
transform), and what benchmarks and reference checks compare it with. Importing
``eca_keras.applications`` imports the families, so the registry is full by the time anyone asks.

This module, the rows and the constructors import neither Keras nor TensorFlow: listing the models
(``eca-keras models``) is instant.
"""

import dataclasses
from collections.abc import Callable

from eca_keras.preprocessing import EvalConfig

ORIGINS = ("official", "timm")
CHECKPOINT_FORMATS = ("official_pth", "timm_safetensors")
OFFICIAL_LICENSE = "MIT (BangguWu/ECANet)"
TIMM_LICENSE = "Apache-2.0 (huggingface/pytorch-image-models)"


@dataclasses.dataclass(frozen=True)
class Result:
    """A published ImageNet accuracy: top-1 / top-5 (%) at an input size and crop fraction."""

    size: int
    crop_pct: float
    top1: float
    top5: float | None = None


@dataclasses.dataclass(frozen=True)
class WeightEntry:
    """One published ImageNet checkpoint of one model: where it is hosted, how it was measured.

    ``eval`` is the transform at the size the weights were trained for (timm's ``input_size``);
    ``test_size`` / ``test_crop_pct`` are timm's larger test-time size where it publishes one;
    ``results`` holds the published accuracies, the one at ``eval``'s size first.
    """

    model: str
    tag: str  # "official" for BangguWu/ECANet, timm's pretrained tag otherwise
    file_name: str  # also the name looked up under ECA_KERAS_WEIGHTS_MIRROR
    url: str
    format: str  # one of CHECKPOINT_FORMATS
    results: tuple  # Result rows, the one at eval.input_size first
    eval: EvalConfig
    test_size: int | None = None
    test_crop_pct: float | None = None
    sha256: str | None = None  # None: not pinned yet (the upstream host publishes none)
    license: str = ""
    hf_repo: str | None = None  # timm's Hugging Face repository (timm/<arch>.<tag>)
    hf_file: str | None = None
    fallback: str = ""  # where else to get the file when the host fails (the release's Baidu link)

    def __post_init__(self):
        if self.format not in CHECKPOINT_FORMATS:
            raise ValueError(f"format must be one of {CHECKPOINT_FORMATS}; received {self.format}")
        rows = (row if isinstance(row, Result) else Result(*row) for row in self.results)
        object.__setattr__(self, "results", tuple(rows))
        if not self.results or self.results[0].size != self.eval.input_size:
            raise ValueError(f"{self.name}: the first result must be at {self.eval.input_size} px")

    @property
    def name(self):
        """``<model>.<tag>``, as timm names weights."""
        return f"{self.model}.{self.tag}"

    @property
    def top1(self):
        """Published top-1 (%) at the weights' own size."""
        return self.results[0].top1

    @property
    def top5(self):
        return self.results[0].top5

    @property
    def test_eval(self):
        """The transform at timm's test size (the default one where there is none)."""
        if self.test_size is None:
            return self.eval
        crop = self.test_crop_pct if self.test_crop_pct is not None else self.eval.crop_pct
        return dataclasses.replace(self.eval, input_size=self.test_size, crop_pct=crop)

    def result_at(self, size):
        """The published :class:`Result` at ``size`` px, or None."""
        return next((row for row in self.results if row.size == size), None)


def official_weights(model, file_name, drive_id, top1, top5, baidu):
    """A checkpoint of the official ECA-Net release (Google Drive, 224 px, bilinear, crop 0.875).

    ``baidu``: ``(share path, extraction code)`` of the release's Baidu mirror.
    """
    # The usercontent endpoint with confirm=t skips Drive's virus-scan page for large files.
    url = f"https://drive.usercontent.google.com/download?id={drive_id}&export=download&confirm=t"
    share, code = baidu
    return WeightEntry(
        model,
        "official",
        file_name,
        url,
        "official_pth",
        [(224, 0.875, top1, top5)],
        EvalConfig(),
        license=OFFICIAL_LICENSE,
        fallback=f"https://pan.baidu.com/s/{share} (extraction code {code})",
    )


def timm_weights(model, tag, size, crop_pct, top1, top5, test=None, **eval_fields):
    """A checkpoint of timm's on the Hugging Face hub (``timm/<model>.<tag>``, safetensors), as
    timm's ``pretrained_cfg`` and ``results-imagenet.csv`` describe it: trained for ``size`` px,
    evaluated with ``crop_pct`` (bicubic, ImageNet mean/std unless ``eval_fields`` say otherwise)
    at ``top1`` / ``top5``; ``test``: ``(size, crop_pct, top1, top5)`` at timm's test size."""
    repo = f"timm/{model}.{tag}"
    interpolation = eval_fields.pop("interpolation", "bicubic")
    results = [(size, crop_pct, top1, top5)] + ([test] if test else [])
    return WeightEntry(
        model,
        tag,
        f"{model}.{tag}.safetensors",
        f"https://huggingface.co/{repo}/resolve/main/model.safetensors",
        "timm_safetensors",
        results,
        EvalConfig(size, crop_pct, interpolation, **eval_fields),
        test_size=test[0] if test else None,
        test_crop_pct=test[1] if test else None,
        license=TIMM_LICENSE,
        hf_repo=repo,
        hf_file="model.safetensors",
    )


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a registered model is, without building it."""

    name: str
    constructor: Callable
    params: int  # trainable parameters with the 1000-class head (the upstream count)
    default_size: int
    family: str  # the module that builds it; its checkpoints convert with convert/<family>.py
    origin: str  # "official" (BangguWu/ECANet) or "timm"
    weights: tuple = ()  # WeightEntry rows; the first is weights="imagenet"
    head_dropout: float = 0.0  # dropout before the classifier (ECA-MobileNetV2: 0.25)
    keras_baseline: str | None = None  # the keras.applications model benchmarks compare with
    reference: str | None = None  # PyTorch reference checked against: "official" or "timm"
    summary: str = ""

    def __post_init__(self):
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}; received {self.origin!r}")
        object.__setattr__(self, "weights", tuple(self.weights))
        for entry in self.weights:
            if entry.model != self.name:
                raise ValueError(f"weight entry {entry.name} registered under {self.name}")

    @property
    def default_weights(self):
        """The entry ``weights="imagenet"`` loads, or None."""
        return self.weights[0] if self.weights else None

    def weight_entry(self, tag=None):
        """The entry with ``tag`` (or the default); raises ``ValueError`` naming the choices."""
        if tag is None:
            if not self.weights:
                raise ValueError(f"No ImageNet weights are registered for {self.name!r}.")
            return self.weights[0]
        for entry in self.weights:
            if tag in (entry.tag, entry.name):
                return entry
        tags = ", ".join(entry.tag for entry in self.weights) or "none"
        raise ValueError(f"{self.name} has no weights tagged {tag!r}; its tags: {tags}.")


_MODELS = {}


def register(info):
    """Adds a :class:`ModelInfo`; a second model of the same name is an error."""
    if info.name in _MODELS and _MODELS[info.name] is not info:
        raise ValueError(f"A model named {info.name!r} is registered already")
    _MODELS[info.name] = info
    return info


def unregister(name):
    """Removes a registered model (a test's toy variant)."""
    _MODELS.pop(name, None)


def list_models(family=None):
    """Names of every registered model (in registration order: official ones first)."""
    return [name for name, info in _MODELS.items() if family in (None, info.family)]


def model_info(name):
    """The :class:`ModelInfo` of a registered model."""
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown model {name!r}. Registered models: {', '.join(_MODELS)}."
        ) from None


def is_registered(name):
    return isinstance(name, str) and name in _MODELS


def get_model(name, **kwargs):
    """Builds the registered model ``name``; keyword arguments go to its constructor."""
    return model_info(name).constructor(**kwargs)


def weight_entries():
    """Every registered weight entry, ``{"<model>.<tag>": WeightEntry}``."""
    return {entry.name: entry for info in _MODELS.values() for entry in info.weights}


def find_weight_entry(reference):
    """The entry for ``"<model>.<tag>"`` or a model name (its default entry), else None."""
    if not isinstance(reference, str):
        return None
    if reference in _MODELS:
        return _MODELS[reference].default_weights
    return weight_entries().get(reference)


def eval_config(name, weights=None, input_size=None):
    """A registered model's evaluation transform: that of ``weights`` (``"imagenet"``, a tag) if
    they are registered, else the model's default size with the ImageNet defaults. At another
    ``input_size`` the crop fraction is the one published at that size (timm's test size), else
    the same."""
    info = model_info(name)
    entry = None
    if weights == "imagenet" and info.weights:
        entry = info.default_weights
    elif isinstance(weights, str):
        entry = next((e for e in info.weights if weights in (e.tag, e.name)), None)
    config = entry.eval if entry else EvalConfig(info.default_size)
    if input_size is None or input_size == config.input_size:
        return config
    published = entry.result_at(input_size) if entry else None
    crop = published.crop_pct if published else config.crop_pct
    return dataclasses.replace(config, input_size=int(input_size), crop_pct=crop)
