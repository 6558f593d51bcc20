"""Classifying image files with any model :func:`eca_keras.models.open_model` takes (what
``eca-keras predict`` runs)."""

import numpy as np

from eca_keras.models import open_model
from eca_keras.preprocessing import eval_transform, load_image


def prepare_image(path, config):
    """Reads an image file and applies the evaluation transform; float32 RGB in [0, 255]."""
    return eval_transform(load_image(path), config).numpy()


def classify_images(model, paths, weights="imagenet", top=5):
    """Returns ``[(path, [(class id, class name, probability), ...]), ...]`` for each image.

    ``model`` is a registered model (ImageNet classes: the id is the WordNet id), a ``.keras``
    file or run directory of ``eca-keras train`` (its run's classes and evaluation transform),
    or an exported SavedModel, ``.tflite`` or ``.onnx`` (its labels file and recorded
    transform); for those the id is the class index.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"--top must be a positive integer; received {top!r}")
    opened = open_model(model, weights)
    pixels = np.stack([prepare_image(path, opened.eval_config) for path in paths])
    if opened.pixel_dtype == "uint8":
        pixels = np.round(pixels)
    probabilities = opened.probabilities(pixels)
    ids = [str(index) for index in range(opened.num_classes)]
    if opened.kind == "registered":
        from eca_keras.applications.imagenet_utils import imagenet_classes

        ids = [wnid for wnid, _ in imagenet_classes()]
    results = []
    for path, row in zip(paths, probabilities, strict=True):
        best = np.argsort(-row)[: min(top, len(row))]
        results.append((path, [(ids[i], opened.class_names[i], float(row[i])) for i in best]))
    return results
