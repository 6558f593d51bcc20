"""Segmenting images with a trained DeepLabV3, and its mean IoU.

Mean IoU is ``keras.metrics.MeanIoU`` over the whole set: one confusion matrix of every scored
pixel, IoU per class (background included) among the classes that occur in the labels or the
predictions, averaged. It is measured at the model's input size, on letterboxed images whose
padding is not scored.
"""

import keras
import numpy as np

from eca_keras.data.annotated import IGNORE_LABEL, letterbox
from eca_keras.tasks.models import input_size


def mean_iou_metric(num_classes, name="mean_iou"):
    """The metric: class-index labels ``(B, H, W, 1)``, logits ``(B, H, W, C)``, padding
    (:data:`IGNORE_LABEL`) not scored."""
    return keras.metrics.MeanIoU(
        num_classes, name=name, ignore_class=IGNORE_LABEL, sparse_y_true=True, sparse_y_pred=False
    )


def _logits_function(segmenter):
    import tensorflow as tf

    @tf.function(reduce_retracing=False)
    def run(pixels):
        return segmenter(segmenter.preprocessor(pixels), training=False)

    return run


def segment(segmenter, images, batch_size=16):
    """Class masks ``(H, W)`` (0 background, ``1 + class``) of ``images`` (uint8 RGB arrays of
    any size), at each image's own size."""
    from PIL import Image

    size = input_size(segmenter)
    run = _logits_function(segmenter)
    masks = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        boxed = [letterbox(image, size) for image in chunk]
        pixels = np.zeros((batch_size, size, size, 3), "uint8")
        pixels[: len(chunk)] = np.stack([pixels_ for pixels_, _, _ in boxed])
        classes = np.asarray(run(pixels)).argmax(axis=-1).astype("uint8")
        for index, (image, (_, _, (scale, top, left))) in enumerate(zip(chunk, boxed, strict=True)):
            height, width = image.shape[:2]
            inside = classes[
                index, top : top + round(height * scale), left : left + round(width * scale)
            ]
            masks.append(np.asarray(Image.fromarray(inside).resize((width, height), Image.NEAREST)))
    return masks


def evaluate_segmenter(segmenter, data, batch_size=16):
    """``{"mean_iou", "pixel_accuracy", "n"}`` of ``segmenter`` on ``data`` (see module doc)."""
    from eca_keras.data.segmentation import segmentation_batches

    num_classes = data.num_classes + 1
    metric = mean_iou_metric(num_classes)
    run = _logits_function(segmenter)
    correct = scored = 0
    for pixels, masks in segmentation_batches(data, input_size(segmenter), batch_size):
        count = int(pixels.shape[0])
        padded = np.zeros((batch_size, *pixels.shape[1:]), "uint8")
        padded[:count] = pixels.numpy()
        logits = np.asarray(run(padded))[:count]
        metric.update_state(masks, logits)
        labels = masks.numpy()[..., 0]
        kept = labels != IGNORE_LABEL
        correct += int(np.sum((logits.argmax(-1) == labels) & kept))
        scored += int(kept.sum())
    return {
        "mean_iou": float(metric.result()),
        "pixel_accuracy": correct / max(scored, 1),
        "n": len(data),
    }
