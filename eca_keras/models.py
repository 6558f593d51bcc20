"""One way to open any model reference, and to say what it is.

:func:`open_model` takes

- a registered model name (``eca_resnet50``) with ``weights`` (``"imagenet"``, a tag, a file,
  ``None``);
- a ``.keras`` file (a run's ``best.keras``, or any saved model of this package);
- a run directory of ``eca-keras train`` (its ``best.keras``, else ``last.keras``);
- a preset of ``eca-keras publish``: ``hf://org/name[@revision]``, ``kaggle://...`` or its folder;
- an exported SavedModel directory, ``.tflite`` or ``.onnx`` file (with the sidecar
  ``eca-keras export`` wrote beside it);

and returns an :class:`OpenedModel`: something to call on RGB pixels in ``[0, 255]``, with the
evaluation transform its pixels must be prepared with, its class names, and whether the network
ends in logits or probabilities. evaluate, predict, export and fine-tuning all open models here.
"""

import dataclasses
import os

import numpy as np

from eca_keras import artifacts, downloads, runs
from eca_keras.applications import registry, weights
from eca_keras.preprocessing import EvalConfig, normalize

KINDS = ("registered", "keras", "run", "preset", "saved_model", "tflite", "onnx")


@dataclasses.dataclass
class OpenedModel:
    """A model ready to classify pixels, and what is known about it.

    ``keras_model`` (Keras kinds) takes normalised images; ``artifact`` (exported kinds) takes
    uint8 pixels and returns probabilities. :meth:`probabilities` hides the difference.
    """

    reference: str
    kind: str
    name: str
    eval_config: EvalConfig
    class_names: list
    outputs: str  # "logits" or "probabilities"
    keras_model: object = None
    artifact: object = None
    run_config: dict = dataclasses.field(default_factory=dict)

    @property
    def input_size(self):
        return self.eval_config.input_size

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def pixel_dtype(self):
        """What :meth:`probabilities` is best fed: exported models take uint8 pixels."""
        return "float32" if self.keras_model is not None else "uint8"

    def scores(self, pixels):
        """The network's own outputs (logits or probabilities) for RGB ``pixels`` in
        ``[0, 255]``, shape ``(N, S, S, 3)``."""
        if self.keras_model is None:
            return np.asarray(self.artifact(np.asarray(pixels).astype("uint8")))
        config = self.eval_config
        images = normalize(np.asarray(pixels, "float32"), config.mean, config.std)
        return np.asarray(self.keras_model.predict_on_batch(images), "float32")

    def probabilities(self, pixels):
        """Class probabilities for RGB ``pixels`` in ``[0, 255]``."""
        scores = self.scores(pixels)
        return softmax(scores) if self.outputs == "logits" else scores


def softmax(logits):
    logits = np.asarray(logits, "float64")
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exponentials / exponentials.sum(axis=-1, keepdims=True)).astype("float32")


def ends_in_softmax(model):
    """Whether a Keras classifier's last layer applies a softmax (a registered model's head)
    rather than returning logits (a head trained by ``eca-keras train``)."""
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def imagenet_class_names():
    from eca_keras.applications.imagenet_utils import imagenet_classes

    return [description.split(",")[0] for _, description in imagenet_classes()]


def kind_of(reference):
    """Which kind of reference ``reference`` is (see :data:`KINDS`), or None."""
    reference = os.fspath(reference)
    if registry.is_registered(reference):
        return "registered"
    if artifacts.is_tflite(reference):
        return "tflite"
    if artifacts.is_onnx(reference):
        return "onnx"
    if artifacts.is_saved_model(reference):  # before presets: both hold an eca_keras.json
        return "saved_model"
    if downloads.is_hub_handle(reference) or os.path.isfile(
        os.path.join(reference, weights.PRESET_INFO)
    ):
        return "preset"
    if reference.endswith(".keras"):
        return "keras"
    if runs.is_run_dir(reference):
        return "run"
    return None


def open_model(reference, weights="imagenet", input_size=None):
    """Opens ``reference`` (see the module docstring) as an :class:`OpenedModel`.

    ``weights`` applies to registered names; ``input_size`` rebuilds a Keras network for another
    square input size (the weights do not depend on it).
    """
    reference = os.fspath(reference)
    kind = kind_of(reference)
    if kind == "registered":
        return _open_registered(reference, weights, input_size)
    if kind == "run":
        return _open_keras_file(runs.model_file(reference), input_size, reference, "run")
    if kind == "keras":
        if not os.path.isfile(reference):
            raise FileNotFoundError(f"No such model file: {reference}")
        return _open_keras_file(reference, input_size, reference, "keras")
    if kind == "preset":
        return _open_preset(reference, input_size)
    if kind in ("tflite", "onnx") and not os.path.isfile(reference):
        format_name = "TFLite" if kind == "tflite" else "ONNX"
        raise FileNotFoundError(f"No such {format_name} file: {reference}")
    if kind in ("tflite", "onnx", "saved_model"):
        return _open_artifact(reference, kind)
    if os.path.isdir(reference):
        raise ValueError(
            f"{reference} is neither a run directory of `eca-keras train` (no config.yaml) nor "
            "an exported SavedModel (no saved_model.pb)"
        )
    raise ValueError(
        f"Unknown model {reference!r}: not a registered model "
        f"({', '.join(registry.list_models())}), a .keras file, a run directory of "
        "`eca-keras train`, an exported SavedModel directory or a .tflite or .onnx file"
    )


def _open_registered(name, weights, input_size):
    config = registry.eval_config(name, weights, input_size)
    size = config.input_size
    network = registry.get_model(name, weights=weights, input_shape=(size, size, 3))
    return OpenedModel(
        name,
        "registered",
        name,
        config,
        imagenet_class_names(),
        "probabilities" if ends_in_softmax(network) else "logits",
        keras_model=network,
    )


def _open_preset(reference, input_size):
    folder, _ = downloads.fetch_preset(reference)
    info = weights.read_preset_info(folder)
    config = EvalConfig.from_dict(info["eval"])
    if input_size:
        config = config.resized(input_size)
    size = config.input_size
    network = registry.get_model(
        info["architecture"],
        weights=folder,
        classes=info["num_classes"],
        classifier_activation=None,
        input_shape=(size, size, 3),
    )
    return OpenedModel(
        reference,
        "preset",
        info["architecture"],
        config,
        [str(name) for name in info["class_names"]],
        "logits",
        keras_model=network,
        run_config={"dataset": (info.get("run") or {}).get("dataset")},
    )


def _open_keras_file(path, input_size, reference, kind):
    import keras

    import eca_keras.layers  # noqa: F401 (registers ECA and its BatchNormalization for loading)

    try:
        network = keras.saving.load_model(path)
    except Exception as error:  # zip, HDF5 and deserialisation errors alike
        raise ValueError(f"{path}: not a loadable Keras model ({type(error).__name__})") from None
    run_dir = runs.run_dir_of(path)
    config = runs.read_config(run_dir) if run_dir else {}
    size = input_size or network.input_shape[1]
    if size is None:
        raise ValueError(f"{path} takes images of any size: pass an input size")
    if input_size and input_size != network.input_shape[1]:
        network = as_float32(network, input_size)
    eval_config = (
        runs.eval_config({**config, "image_size": size}) if config else EvalConfig(int(size))
    )
    classes = network.output_shape[-1]
    return OpenedModel(
        reference,
        kind,
        str(config.get("model") or os.path.splitext(os.path.basename(path))[0]),
        eval_config,
        runs.class_names(config, classes),
        "probabilities" if ends_in_softmax(network) else "logits",
        keras_model=network,
        run_config=config,
    )


def _open_artifact(path, kind):
    artifact = artifacts.load_artifact(path)
    metadata = artifacts.read_metadata(path)
    if "eval" not in metadata:
        raise ValueError(
            f"{path} has no sidecar ({artifacts.metadata_path(path)}) saying how its images are "
            "prepared (size, crop, interpolation): keep the files `eca-keras export` wrote "
            "together"
        )
    config = EvalConfig.from_dict({**metadata["eval"], "input_size": artifact.input_size})
    names = [str(index) for index in range(artifact.num_classes)]
    labels = artifacts.labels_path(path)
    if os.path.isfile(labels):
        with open(labels) as handle:
            names = handle.read().splitlines()
    if len(names) != artifact.num_classes:
        raise ValueError(
            f"{labels} names {len(names)} classes but {path} predicts {artifact.num_classes}"
        )
    return OpenedModel(
        path,
        kind,
        str(metadata.get("model") or os.path.basename(path)),
        config,
        names,
        "probabilities",
        artifact=artifact,
    )


def as_float32(model, input_size):
    """``model`` rebuilt, where needed, with a square ``input_size`` input and float32 layers
    (a mixed-precision model exports as float32; quantisation is the export's job)."""
    config = model.get_config()
    changed = False
    for layer in config["layers"]:
        settings = layer["config"]
        if layer["class_name"] == "InputLayer":
            shape = list(settings["batch_shape"])
            if shape[1:3] != [input_size, input_size]:
                settings["batch_shape"] = [shape[0], input_size, input_size, *shape[3:]]
                changed = True
        policy = settings.get("dtype")
        if isinstance(policy, dict) and "mixed" in str(policy.get("config", {}).get("name")):
            settings["dtype"] = "float32"
            changed = True
    if not changed:
        return model
    rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
