"""The SavedModel every export starts from: a camera-facing signature around a Keras model.

The serving function takes RGB pixels in ``[0, 255]`` (uint8, or float32 for full-integer
calibration), normalises them with the model's evaluation mean/std, runs the network in inference
mode and returns ``{"probabilities": ...}`` (a softmax is added where the model ends in logits).
"""

from eca_keras.preprocessing import IMAGENET_MEAN, IMAGENET_STD


def serving_function(model, outputs_probabilities, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """``images -> {"probabilities": (N, classes) float32}`` around a Keras ``model``."""
    import tensorflow as tf

    from eca_keras.preprocessing import normalize

    def serve(images):
        outputs = model(normalize(tf.cast(images, tf.float32), mean, std), training=False)
        outputs = tf.cast(outputs, tf.float32)
        if not outputs_probabilities:
            outputs = tf.nn.softmax(outputs)
        return {"probabilities": outputs}

    return serve


def write_saved_model(
    model,
    outputs_probabilities,
    path,
    input_size,
    dtype="uint8",
    batch=None,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
):
    """A SavedModel whose ``serving_default`` takes ``images`` ``(batch, S, S, 3)`` of ``dtype``;
    loadable with ``tf.saved_model.load`` and ``keras.layers.TFSMLayer``. ECA is traced in
    :func:`eca_keras.layers.eca.converter_form`."""
    import keras
    import tensorflow as tf

    from eca_keras.layers.eca import converter_form

    archive = keras.export.ExportArchive()
    archive.track(model)
    with converter_form():  # the form TFLite's converter folds (see there)
        archive.add_endpoint(
            "serve",
            serving_function(model, outputs_probabilities, mean, std),
            input_signature=[
                tf.TensorSpec((batch, input_size, input_size, 3), dtype, name="images")
            ],
        )
        archive.write_out(path, verbose=False)
