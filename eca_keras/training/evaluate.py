"""Top-1 / top-5 of a model on a dataset, with the right evaluation transform.

``eca-keras evaluate --model eca_resnet50 --weights imagenet --dataset <ImageNet val folder>``
reproduces a published number: a registered model with ImageNet weights is evaluated with its
weights' own transform (input size, crop, interpolation), and a folder of WordNet-id class
folders is labelled with ImageNet indices. A ``.keras`` file from ``eca-keras train`` is
evaluated with its run's ``config.yaml`` (image size, crop); an exported SavedModel or
``.tflite`` with the transform recorded at export, fed uint8 pixels. Datasets are those of training
(:mod:`eca_keras.training.data`): their validation split, and a flat folder whole.
"""

import os

import keras
import numpy as np
import yaml

from eca_keras.applications import get_model, list_models, model_info
from eca_keras.applications.imagenet_utils import NUM_CLASSES as NUM_IMAGENET_CLASSES
from eca_keras.applications.weights import WEIGHTS, EvalConfig
from eca_keras.training import data


def registered_eval_config(name, weights):
    """A registered model's transform: its ImageNet weights' own, else its default size."""
    source = WEIGHTS.get(name) if weights == "imagenet" else None
    return source.eval if source else EvalConfig(model_info(name).default_size)


def read_run_config(model_path):
    """The ``config.yaml`` of the run a ``.keras`` file belongs to (beside it), or ``{}``."""
    config_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.yaml")
    if not os.path.exists(config_path):
        return {}
    with open(config_path) as handle:
        return yaml.safe_load(handle) or {}


def run_eval_config(model_path, input_size):
    """The transform recorded in the run directory of a trained ``.keras`` file, if any."""
    config = read_run_config(model_path)
    return data.eval_config(config) if config else EvalConfig(input_size)


def load_for_evaluation(model, weights="imagenet"):
    """``(model, EvalConfig, normalize)`` for a registered name, a ``.keras`` file or an
    exported artifact (SavedModel directory or ``.tflite``: fed uint8 pixels, so ``normalize``
    is False, with the transform recorded beside it at export)."""
    from eca_keras.export import artifacts

    if model in list_models():
        config = registered_eval_config(model, weights)
        size = config.input_size
        return get_model(model, weights=weights, input_shape=(size, size, 3)), config, True
    if str(model).endswith(".keras"):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"No such model file: {model}")
        loaded = keras.saving.load_model(model)
        return loaded, run_eval_config(model, loaded.input_shape[1]), True
    if artifacts.is_artifact(model):
        artifact = artifacts.load_artifact(model)
        recorded = artifacts.read_metadata(model).get("eval", {})
        config = EvalConfig(**{**recorded, "input_size": artifact.input_size})
        return artifact, config, False
    raise ValueError(
        f"Cannot evaluate {model!r}: give a registered model name ({', '.join(list_models())}), "
        "a .keras file, a SavedModel directory or a .tflite file"
    )


def evaluate(model, batches):
    """``{"top1": %, "top5": %, "n": images}`` of ``model`` over ``(images, labels)`` batches.

    ``model`` is anything with ``predict_on_batch`` (or a callable); labels are integers or
    one-hot rows.
    """
    predict = getattr(model, "predict_on_batch", model)
    known = int(batches.cardinality()) if hasattr(batches, "cardinality") else -1
    progress = keras.utils.Progbar(known if known >= 0 else None, unit_name="batch")
    correct1 = correct5 = count = 0
    for step, (images, labels) in enumerate(batches, start=1):
        scores = np.asarray(predict(images))
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(axis=1)
        top5 = np.argsort(-scores, axis=1)[:, :5]
        correct1 += int(np.sum(top5[:, 0] == labels))
        correct5 += int(np.sum(np.any(top5 == labels[:, None], axis=1)))
        count += len(labels)
        progress.update(step, [("top1", 100.0 * correct1 / count)])
    if not count:
        raise ValueError("The evaluation dataset is empty")
    return {"top1": 100.0 * correct1 / count, "top5": 100.0 * correct5 / count, "n": count}


def evaluate_model(
    model, dataset, weights="imagenet", data_dir=None, batch_size=64, limit=None, num_classes=None
):
    """Loads ``model`` and evaluates it on ``dataset``'s validation split (see module doc)."""
    predictor, config, normalize = load_for_evaluation(model, weights)
    outputs = _class_count(predictor)
    imagenet_labels = outputs == NUM_IMAGENET_CLASSES and _is_wnid_folder(dataset)
    splits = data.load_splits(
        dataset,
        data_dir,
        num_classes=num_classes,
        evaluation=True,
        imagenet_labels=imagenet_labels,
    )
    if splits.num_classes != outputs:
        raise ValueError(
            f"The model predicts {outputs} classes but the dataset has {splits.num_classes}"
        )
    if limit:
        splits.validation = splits.validation.take(limit)
    return evaluate(predictor, data.eval_pipeline(splits, config, batch_size, normalize))


def _class_count(predictor):
    if isinstance(predictor, keras.Model):
        return predictor.output_shape[-1]
    return predictor.num_classes


def _is_wnid_folder(dataset):
    if not os.path.isdir(dataset):
        return False
    folder = data.validation_folder(dataset) or dataset
    names = [entry.name for entry in os.scandir(folder) if entry.is_dir()]
    return bool(names) and all(len(n) == 9 and n[0] == "n" and n[1:].isdigit() for n in names)
