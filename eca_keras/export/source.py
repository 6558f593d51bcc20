"""What an export starts from: a run directory, a ``.keras`` file or a registered model.

Each resolves to an :class:`ExportSource`: the Keras model (float32, normalised input), its
class names, its evaluation transform and, for a run, the dataset it was trained on (the source
of calibration and verification images).
"""

import dataclasses
import os

import keras

from eca_keras.applications import get_model, list_models
from eca_keras.applications.imagenet_utils import imagenet_classes
from eca_keras.applications.weights import EvalConfig
from eca_keras.training import data
from eca_keras.training.evaluate import read_run_config, registered_eval_config

RUN_MODEL_FILES = ("best.keras", "last.keras")


@dataclasses.dataclass
class ExportSource:
    model: keras.Model  # input normalised by preprocess_input; output logits or probabilities
    name: str
    eval_config: EvalConfig
    class_names: list
    dataset: str | None = None  # the training data of a run
    data_dir: str | None = None

    @property
    def input_size(self):
        return self.eval_config.input_size

    @property
    def outputs_probabilities(self):
        """Whether the model ends in a softmax (a registered model's head) or in logits (a
        head trained by ``eca-keras train``)."""
        activation = getattr(self.model.layers[-1], "activation", None)
        return getattr(activation, "__name__", "") == "softmax"


def resolve_source(model_dir=None, model=None, weights="imagenet", input_size=None):
    """The :class:`ExportSource` for ``--model-dir RUN``, ``--model FILE.keras`` or
    ``--model NAME --weights ...``; ``input_size`` rebuilds the network for another square
    input size (the weights do not depend on it)."""
    if (model_dir is None) == (model is None):
        raise ValueError("Give exactly one of --model-dir (a training run) or --model")
    if model_dir is not None:
        return _from_keras_file(_run_model_file(model_dir), input_size)
    if str(model).endswith(".keras"):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"No such model file: {model}")
        return _from_keras_file(model, input_size)
    if model in list_models():
        config = registered_eval_config(model, weights)
        if input_size:
            config = dataclasses.replace(config, input_size=input_size)
        size = config.input_size
        network = get_model(model, weights=weights, input_shape=(size, size, 3))
        names = [description.split(",")[0] for _, description in imagenet_classes()]
        return ExportSource(network, model, config, names)
    raise ValueError(
        f"Cannot export {model!r}: give a run directory (--model-dir), a .keras file or a "
        f"registered model name ({', '.join(list_models())})"
    )


def _run_model_file(model_dir):
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"No such run directory: {model_dir}")
    for name in RUN_MODEL_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{model_dir} holds neither {' nor '.join(RUN_MODEL_FILES)}: is it the --model-dir of "
        "an `eca-keras train` run that finished an epoch?"
    )


def _from_keras_file(path, input_size):
    model = keras.saving.load_model(path)
    run = read_run_config(path)
    size = input_size or model.input_shape[1]
    config = data.eval_config({**run, "image_size": size}) if run else EvalConfig(size)
    classes = model.output_shape[-1]
    names = run.get("class_names") or [str(index) for index in range(classes)]
    name = run.get("model") or os.path.splitext(os.path.basename(path))[0]
    return ExportSource(
        as_float32(model, size),
        str(name),
        config,
        [str(label) for label in names],
        dataset=run.get("dataset"),
        data_dir=run.get("data_dir"),
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
