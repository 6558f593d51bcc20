"""Detecting objects with a trained RetinaNet, scoring it with COCOeval, drawing what it found.

:func:`detect` runs a detector on images of any size (letterboxed into its square input, boxes
mapped back); :func:`coco_map` scores detections with ``pycocotools``' ``COCOeval`` against an
:class:`~eca_keras.data.annotated.AnnotatedImages` (its ground truth), as COCO's leaderboard
does: ``map`` is AP averaged over IoU 0.50:0.95, ``map50`` AP at IoU 0.5.
"""

import contextlib
import io

import keras
import numpy as np

from eca_keras.data.annotated import letterbox, to_image_boxes
from eca_keras.tasks.models import input_size

MAP_KEYS = ("map", "map50", "map75")  # COCOeval.stats[0:3]


def _decoding_function(detector):
    """A compiled ``pixels -> detections`` for fixed-size batches: keras-hub 0.32's
    non-maximum suppression needs a static batch size, which ``predict`` does not give it."""
    import tensorflow as tf

    @tf.function(reduce_retracing=False)
    def run(pixels):
        images = detector.preprocessor(pixels)
        return detector.decode_predictions(detector(images, training=False), images)

    return run


def detect(detector, images, batch_size=16, decoder=None):
    """``[{"boxes" (n, 4) x1 y1 x2 y2 in image pixels, "scores" (n,), "labels" (n,)}, ...]`` for
    ``images`` (uint8 RGB arrays of any size), best score first."""
    size = input_size(detector)
    decoder = decoder or _decoding_function(detector)
    results = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        boxed = [letterbox(image, size) for image in chunk]
        pixels = np.zeros((batch_size, size, size, 3), "uint8")  # one shape: one trace
        pixels[: len(chunk)] = np.stack([pixels_ for pixels_, _, _ in boxed])
        output = {key: np.asarray(value) for key, value in decoder(pixels).items()}
        for index, (image, (_, _, geometry)) in enumerate(zip(chunk, boxed, strict=True)):
            count = int(output["num_detections"][index])
            height, width = image.shape[:2]
            results.append(
                {
                    "boxes": to_image_boxes(
                        output["boxes"][index, :count], geometry, height, width
                    ),
                    "scores": output["confidence"][index, :count].astype("float32"),
                    "labels": output["labels"][index, :count].astype("int64"),
                }
            )
    return results


def coco_detections(data, detections):
    """COCO result records (``image_id, category_id, bbox [x, y, w, h], score``) of
    ``detections`` (from :func:`detect`, in the order of ``data.image_ids``)."""
    records = []
    for image_id, found in zip(data.image_ids, detections, strict=True):
        for box, score, label in zip(found["boxes"], found["scores"], found["labels"], strict=True):
            x1, y1, x2, y2 = (float(value) for value in box)
            records.append(
                {
                    "image_id": image_id,
                    "category_id": data.category_ids[int(label)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return records


def coco_map(data, records):
    """``{"map", "map50", "map75"}`` of COCO result ``records`` on ``data``, by ``COCOeval``
    (bbox); no detection at all scores 0."""
    if not records:
        return dict.fromkeys(MAP_KEYS, 0.0)
    from pycocotools.cocoeval import COCOeval

    truth = data.ground_truth()
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress and table
        evaluation = COCOeval(truth, truth.loadRes(records), "bbox")
        evaluation.params.imgIds = list(data.image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {key: max(float(evaluation.stats[index]), 0.0) for index, key in enumerate(MAP_KEYS)}


def evaluate_detector(detector, data, batch_size=16):
    """COCO mAP of ``detector`` on ``data`` (:class:`AnnotatedImages`), with the image count."""
    images = [data.image(image_id) for image_id in data.image_ids]
    records = coco_detections(data, detect(detector, images, batch_size))
    return {**coco_map(data, records), "n": len(images), "detections": len(records)}


class MapCallback(keras.callbacks.Callback):
    """Adds ``val_map``, ``val_map50``, ``val_map75`` (COCOeval on ``data``) to each epoch's
    logs, before the checkpoints read them."""

    def __init__(self, data, batch_size=16):
        super().__init__()
        self.data, self.batch_size = data, batch_size
        self.images = [data.image(image_id) for image_id in data.image_ids]
        self.decoder = None

    def on_epoch_end(self, epoch, logs=None):
        self.decoder = self.decoder or _decoding_function(self.model)
        found = detect(self.model, self.images, self.batch_size, self.decoder)
        scores = coco_map(self.data, coco_detections(self.data, found))
        if logs is not None:
            logs.update({f"val_{key}": value for key, value in scores.items()})
        print(f"epoch {epoch + 1}: " + ", ".join(f"val_{k} {v:.4f}" for k, v in scores.items()))
