"""Top-1 / top-5 of a model on a dataset, with the right evaluation transform.

``eca-keras evaluate --model eca_resnet50 --weights imagenet --dataset <ImageNet val folder>``
reproduces a published number: a registered model with ImageNet weights is evaluated with its
weights' own transform (input size, crop, interpolation, mean/std), and a folder of WordNet-id
class folders is labelled with ImageNet indices. Any reference :func:`eca_keras.models.open_model`
takes can be evaluated: a run's ``.keras`` file with its run's transform, an exported SavedModel,
``.tflite`` or ``.onnx`` with the transform recorded beside it, fed uint8 pixels. Datasets are
those of training (:mod:`eca_keras.data.classification`): their validation split, and a flat
folder whole.
"""

import itertools
import os
import sys

import numpy as np
import tensorflow as tf

from eca_keras.applications.imagenet_utils import NUM_CLASSES as NUM_IMAGENET_CLASSES
from eca_keras.data import classification
from eca_keras.models import open_model
from eca_keras.preprocessing import eval_pixels, eval_transform


def evaluate(predict, batches, total=None):
    """``{"top1": %, "top5": %, "n": images}`` of ``predict`` (pixels -> scores) over
    ``(pixels, labels)`` batches; labels are integers or one-hot rows."""
    import keras

    # A progress bar on a terminal; in a log file (no terminal) one plain line at the end.
    progress = keras.utils.Progbar(
        total, unit_name="batch", verbose=1 if sys.stdout.isatty() else 2
    )
    correct1 = correct5 = count = 0
    iterator = iter(batches)
    for step in itertools.count(1):
        try:
            pixels, labels = next(iterator)
        except StopIteration:
            break
        except tf.errors.OpError as error:
            error.images_done = count  # where in the dataset's order the bad image is
            raise
        scores = np.asarray(predict(np.asarray(pixels)))
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
    model,
    dataset,
    weights="imagenet",
    data_dir=None,
    batch_size=64,
    limit=None,
    num_classes=None,
    image_size=None,
    skip_bad_images=False,
):
    """Opens ``model`` and evaluates it on ``dataset``'s validation split (see module doc).

    ``image_size`` evaluates a Keras model at another test size (the crop fraction is kept).
    An image file that cannot be read is an error naming it, or, with ``skip_bad_images``, left
    out with a warning (see :func:`eca_keras.data.classification.load_splits`).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"The batch size must be a positive integer; received {batch_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"--limit must be a positive number of images; received {limit!r}")
    opened = open_model(model, weights, input_size=image_size)
    if image_size and opened.keras_model is None:
        raise ValueError(f"{model} is exported at {opened.input_size} px; it has no other size")
    imagenet_labels = opened.num_classes == NUM_IMAGENET_CLASSES and _is_wnid_folder(dataset)
    splits = classification.load_splits(
        dataset,
        data_dir,
        num_classes=num_classes,
        evaluation=True,
        imagenet_labels=imagenet_labels,
        skip_bad_images=skip_bad_images,
    )
    if splits.num_classes != opened.num_classes:
        raise ValueError(
            f"The model predicts {opened.num_classes} classes but the dataset has "
            f"{splits.num_classes}"
        )
    _check_class_names(opened, splits, imagenet_labels)
    images = splits.validation.take(limit) if limit else splits.validation
    batches = _pixel_batches(images, opened, batch_size)
    known = int(batches.cardinality())
    try:
        return evaluate(opened.scores, batches, total=known if known >= 0 else None)
    except tf.errors.InvalidArgumentError as error:
        if not classification.is_decode_error(error):
            raise
        paths = (splits.validation_paths or [])[: limit or None]
        done = getattr(error, "images_done", 0)
        candidates = paths[done : done + batch_size]  # the batch that failed, in order
        if not classification.undecodable_images(candidates):
            candidates = paths
        raise classification.name_undecodable(candidates, error, dataset) from None


def _pixel_batches(images, opened, batch_size):
    """Batches of ``(pixels, labels)`` prepared as ``opened`` expects (float pixels for Keras
    networks, uint8 for exported models)."""
    import tensorflow as tf

    config = opened.eval_config
    prepare = eval_pixels if opened.pixel_dtype == "uint8" else eval_transform
    prepared = images.map(
        lambda image, label: (prepare(image, config), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return prepared.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _check_class_names(opened, splits, imagenet_labels):
    """A model trained on other classes (same count, other names) is refused, not scored.
    ImageNet's 1000 classes are named in several ways (WordNet ids, descriptions) in one order."""
    numbered = [str(i) for i in range(splits.num_classes)]
    if (
        imagenet_labels
        or splits.num_classes == NUM_IMAGENET_CLASSES
        or splits.class_names == numbered
    ):
        return
    if opened.class_names == [str(i) for i in range(opened.num_classes)]:
        return  # the model does not know its class names
    if list(opened.class_names) != list(splits.class_names):
        different = [
            f"{mine!r} vs {theirs!r}"
            for mine, theirs in zip(opened.class_names, splits.class_names, strict=True)
            if mine != theirs
        ]
        raise ValueError(
            f"The model's classes differ from the dataset's: {', '.join(different[:3])}"
            + (f" (and {len(different) - 3} more)" if len(different) > 3 else "")
        )


def _is_wnid_folder(dataset):
    if not isinstance(dataset, str) or not os.path.isdir(dataset):
        return False
    folder = classification.validation_folder(dataset) or dataset
    names = [
        entry.name
        for entry in os.scandir(folder)
        if entry.is_dir() and not entry.name.startswith((".", "__"))  # hidden: no classes
    ]
    return bool(names) and all(len(n) == 9 and n[0] == "n" and n[1:].isdigit() for n in names)
