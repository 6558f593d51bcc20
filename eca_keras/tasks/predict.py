"""``eca-keras predict --task detection|segmentation IMAGE...``: pictures of what a trained model
finds (boxes drawn, or the mask overlaid), written as PNG files."""

import os

import numpy as np

from eca_keras.files import write_atomically
from eca_keras.preprocessing import load_image
from eca_keras.tasks import detection, drawing, models, segmentation

SUFFIXES = {"detection": "detections", "segmentation": "segmentation"}


def class_names(model, config):
    names = config.get("class_names")
    if names:
        return [str(name) for name in names]
    count = model.num_classes - (1 if hasattr(model, "output_conv") else 0)
    return [str(index) for index in range(count)]


def predict_task(task, model, paths, output_dir=".", threshold=0.3, batch_size=16):
    """Writes ``<output_dir>/<image name>.<detections|segmentation>.png`` for each image;
    returns ``[(written path, what was found), ...]``: detections above ``threshold`` as
    ``(class, score, box)`` tuples, or the classes in the mask with their pixel counts."""
    network, config = models.open_task_model(model, task)
    names = class_names(network, config)
    images = [np.asarray(load_image(path)) for path in paths]
    os.makedirs(output_dir, exist_ok=True)
    if task == "detection":
        found = detection.detect(network, images, batch_size)
    else:
        found = segmentation.segment(network, images, batch_size)
    results = []
    for path, image, result in zip(paths, images, found, strict=True):
        if task == "detection":
            keep = result["scores"] >= threshold
            boxes, labels, scores = (result[key][keep] for key in ("boxes", "labels", "scores"))
            picture = drawing.draw_detections(image, boxes, labels, scores, names)
            summary = [
                (names[int(label)], round(float(score), 3), [round(float(v), 1) for v in box])
                for box, label, score in zip(boxes, labels, scores, strict=True)
            ]
        else:
            picture = drawing.draw_mask(image, result, names)
            values, counts = np.unique(result, return_counts=True)
            summary = [
                (names[int(value) - 1], int(count))
                for value, count in zip(values, counts, strict=True)
                if value
            ]
        stem = os.path.splitext(os.path.basename(path))[0]
        target = os.path.join(output_dir, f"{stem}.{SUFFIXES[task]}.png")
        write_atomically(target, _png_bytes(picture))
        results.append((target, summary))
    return results


def _png_bytes(picture):
    import io

    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
