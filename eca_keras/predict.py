"""Classifying image files with a registered model (what ``eca-keras predict`` runs)."""

import os

import numpy as np

from eca_keras.applications import decode_predictions, get_model, model_info, preprocess_input
from eca_keras.applications.weights import WEIGHTS, EvalConfig


def load_image(path, config):
    """Reads an image file and applies the evaluation transform: resize the short side to
    ``input_size / crop_pct``, center crop ``input_size``. Returns float32 RGB in [0, 255]."""
    import tensorflow as tf

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such image file: {path}")
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    height, width = image.shape[0], image.shape[1]
    scale = (config.input_size / config.crop_pct) / min(height, width)
    size = (
        max(config.input_size, round(height * scale)),
        max(config.input_size, round(width * scale)),
    )
    image = tf.image.resize(image, size, method=config.interpolation, antialias=True)
    top = (size[0] - config.input_size) // 2
    left = (size[1] - config.input_size) // 2
    image = image[top : top + config.input_size, left : left + config.input_size]
    return np.clip(image.numpy(), 0.0, 255.0).astype("float32")


def classify_images(model_name, paths, weights="imagenet", top=5):
    """Returns ``[(path, [(wnid, label, score), ...]), ...]`` for each image file."""
    info = model_info(model_name)
    source = WEIGHTS.get(model_name)
    config = source.eval if source else EvalConfig(info.default_size)
    images = np.stack([load_image(path, config) for path in paths])
    model = get_model(model_name, weights=weights, input_shape=images.shape[1:])
    probabilities = model.predict(preprocess_input(images), verbose=0)
    return list(zip(paths, decode_predictions(probabilities, top=top), strict=True))
