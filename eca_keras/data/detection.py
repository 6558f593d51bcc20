"""Detection data: ``--dataset`` for ``--task detection|segmentation``, and RetinaNet's batches.

``--dataset`` takes

- ``digits``: the embedded digit scenes (2,000 training and 200 validation images, 96x96, the
  ten digits as classes), generated in code, no download (:mod:`eca_keras.data.scenes`);
- a COCO instances JSON (``--images`` names the image folder, by default the JSON's folder),
  read and checked by :mod:`eca_keras.data.coco`; split 80/20 by image unless a validation file
  is given.
"""

import numpy as np

from eca_keras.data import coco, scenes
from eca_keras.data.annotated import letterbox, scenes_as_coco, to_input_boxes


def load_splits(
    dataset, images=None, validation=None, validation_images=None, seed=0, evaluation=False
):
    """``(train, validation)`` :class:`AnnotatedImages` of ``--dataset`` (module docstring).

    A COCO file without ``validation`` is split 80/20 by image with ``seed``; with
    ``evaluation`` it is the validation set whole (``train`` is None).
    """
    if dataset == "digits":
        validation_set = scenes_as_coco(
            scenes.digit_scenes(scenes.VALIDATION_SCENES, "validation", seed), source="digits"
        )
        if evaluation:
            return None, validation_set
        train_set = scenes_as_coco(
            scenes.digit_scenes(scenes.TRAIN_SCENES, "train", seed), source="digits"
        )
        return train_set, validation_set
    if not str(dataset).endswith(".json"):
        raise ValueError(
            f"Unknown dataset {dataset!r}: expected 'digits' or a COCO instances file "
            "(*.json, with --images naming its image folder)"
        )
    everything = coco.read_coco(dataset, images)
    if validation:
        return everything, coco.read_coco(validation, validation_images or images)
    if evaluation:
        return None, everything
    return coco.split(everything, seed)


def ordered_ids(data, shuffle, seed):
    ids = list(data.image_ids)
    if shuffle:
        np.random.default_rng(seed).shuffle(ids)
    return ids


def detection_batches(data, image_size, batch_size, shuffle=False, seed=0, repeat=False):
    """``tf.data`` batches ``(uint8 images, {"boxes", "labels"})`` for keras-hub's RetinaNet:
    letterboxed images, boxes ``x1 y1 x2 y2`` in input pixels, padded with -1 boxes and labels
    to the batch's largest count. ``shuffle``: a new order each epoch (from ``seed``)."""
    import tensorflow as tf

    def examples():
        epoch = 0
        while True:
            for image_id in ordered_ids(data, shuffle, seed + epoch):
                pixels, _, geometry = letterbox(data.image(image_id), image_size)
                boxes, labels = data.targets(image_id)
                if not len(labels):  # one padding box: a batch of no boxes has no shape
                    boxes, labels = np.full((1, 4), -1.0, "float32"), np.full(1, -1)
                else:
                    boxes = to_input_boxes(boxes, geometry)
                yield pixels, boxes, labels.astype("float32")
            epoch += 1
            if not repeat:
                return

    signature = (
        tf.TensorSpec((image_size, image_size, 3), tf.uint8),
        tf.TensorSpec((None, 4), tf.float32),
        tf.TensorSpec((None,), tf.float32),
    )
    batches = tf.data.Dataset.from_generator(examples, output_signature=signature).padded_batch(
        batch_size, padding_values=(np.uint8(0), -1.0, -1.0), drop_remainder=repeat
    )
    batches = batches.map(lambda x, boxes, labels: (x, {"boxes": boxes, "labels": labels}))
    return with_length(batches, data, batch_size, repeat).prefetch(tf.data.AUTOTUNE)


def with_length(batches, data, batch_size, repeat):
    """A finite pass declares its number of batches (Keras then knows when an epoch of
    validation ends); a repeated one is endless."""
    import tensorflow as tf

    if repeat:
        return batches.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    count = -(-len(data) // batch_size)
    return batches.apply(tf.data.experimental.assert_cardinality(count))
