"""Classifying image files with a registered model (what ``eca-keras predict`` runs)."""

import os

import numpy as np

from eca_keras.applications import decode_predictions, get_model, model_info, preprocess_input
from eca_keras.applications.weights import WEIGHTS, EvalConfig
from eca_keras.preprocessing import eval_transform, read_image


def eval_config(model_name):
    """The evaluation transform of ``model_name``'s ImageNet weights (or its default size)."""
    source = WEIGHTS.get(model_name)
    return source.eval if source else EvalConfig(model_info(model_name).default_size)


def load_image(path, config):
    """Reads an image file and applies :func:`eval_transform`; float32 RGB in [0, 255]."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such image file: {path}")
    return eval_transform(read_image(path), config).numpy()


def classify_images(model_name, paths, weights="imagenet", top=5):
    """Returns ``[(path, [(wnid, label, score), ...]), ...]`` for each image file."""
    config = eval_config(model_name)
    images = np.stack([load_image(path, config) for path in paths])
    model = get_model(model_name, weights=weights, input_shape=images.shape[1:])
    probabilities = model.predict(preprocess_input(images), verbose=0)
    return list(zip(paths, decode_predictions(probabilities, top=top), strict=True))
