"""Classifying image files with a registered model (what ``eca-keras predict`` runs)."""

import os

import numpy as np

from eca_keras.applications import decode_predictions, get_model, preprocess_input
from eca_keras.preprocessing import eval_transform, read_image
from eca_keras.training.evaluate import read_run_config, registered_eval_config, run_eval_config


def load_image(path, config):
    """Reads an image file and applies :func:`eval_transform`; float32 RGB in [0, 255]."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such image file: {path}")
    return eval_transform(read_image(path), config).numpy()


def classify_images(model_name, paths, weights="imagenet", top=5):
    """Returns ``[(path, [(wnid, label, score), ...]), ...]`` for each image file.

    ``model_name`` is a registered model (ImageNet classes), a ``.keras`` file written by
    ``eca-keras train`` (its run's classes and evaluation transform, from ``config.yaml``), or
    an exported SavedModel or ``.tflite`` (its labels file and recorded transform). For the last
    two, ``wnid`` is the class index.
    """
    from eca_keras.export import artifacts

    if str(model_name).endswith(".keras"):
        return _classify_with_run_model(model_name, paths, top)
    if artifacts.is_artifact(model_name):
        return _classify_with_artifact(model_name, paths, top)
    config = registered_eval_config(model_name, weights)
    images = np.stack([load_image(path, config) for path in paths])
    model = get_model(model_name, weights=weights, input_shape=images.shape[1:])
    probabilities = model.predict(preprocess_input(images), verbose=0)
    return list(zip(paths, decode_predictions(probabilities, top=top), strict=True))


def _classify_with_run_model(model_path, paths, top):
    import keras

    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"No such model file: {model_path}")
    model = keras.saving.load_model(model_path)
    config = run_eval_config(model_path, model.input_shape[1])
    classes = model.output_shape[-1]
    names = read_run_config(model_path).get("class_names") or [str(i) for i in range(classes)]
    images = np.stack([load_image(path, config) for path in paths])
    logits = np.asarray(model.predict(preprocess_input(images), verbose=0), "float64")
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return _top_classes(paths, probabilities, names, top)


def _classify_with_artifact(path, paths, top):
    from eca_keras.export import artifacts
    from eca_keras.training.evaluate import load_for_evaluation

    artifact, config, _ = load_for_evaluation(path)
    names = [str(i) for i in range(artifact.num_classes)]
    labels = artifacts.labels_path(path)
    if os.path.isfile(labels):
        with open(labels) as handle:
            names = handle.read().splitlines()
    pixels = np.stack([np.round(load_image(image, config)) for image in paths]).astype("uint8")
    return _top_classes(paths, artifact(pixels), names, top)


def _top_classes(paths, probabilities, names, top):
    results = []
    for path, row in zip(paths, probabilities, strict=True):
        best = np.argsort(-row)[: min(top, len(row))]
        results.append((path, [(str(i), str(names[i]), float(row[i])) for i in best]))
    return results
