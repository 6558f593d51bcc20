"""Top-1 / top-5 of a model on ImageNet-style data, with the weights' own evaluation transform.

``eca-keras evaluate --model eca_resnet50 --weights imagenet --dataset <ImageNet val folder>``
reproduces a published number. Data: a folder of class sub-folders (ImageNet's validation set
in WordNet-id folders, as PyTorch users keep it) or ``tfds:<name>[/<config>]`` read from
``--data-dir`` as prepared by TensorFlow Datasets (e.g. ``tfds:imagenet2012``).
"""

import os

import numpy as np

from eca_keras.applications import preprocess_input
from eca_keras.applications.imagenet_utils import imagenet_classes
from eca_keras.preprocessing import eval_transform, read_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def folder_examples(folder):
    """``(paths, labels)`` of a folder of class sub-folders.

    Sub-folders named by WordNet id take their ImageNet class index (so a subset of ImageNet's
    classes keeps the right labels); any other names are numbered in sorted order.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"No such dataset folder: {folder}")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    index = {wnid: i for i, (wnid, _) in enumerate(imagenet_classes())}
    by_wnid = bool(classes) and all(name in index for name in classes)
    paths, labels = [], []
    for position, name in enumerate(classes):
        label = index[name] if by_wnid else position
        for root, _, files in sorted(os.walk(os.path.join(folder, name))):
            for file in sorted(files):
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(root, file))
                    labels.append(label)
    if not paths:
        raise ValueError(f"No images found in class sub-folders of {folder}")
    return paths, labels


def eval_dataset(dataset, config, batch_size=64, data_dir=None, split="validation", limit=None):
    """A batched ``tf.data.Dataset`` of ``(preprocessed images, labels)``."""
    import tensorflow as tf

    def transform(image, label):
        return preprocess_input(eval_transform(image, config)), label

    if dataset.startswith("tfds:"):
        import tensorflow_datasets as tfds

        data = tfds.load(dataset[5:], split=split, data_dir=data_dir, as_supervised=True)
    else:
        paths, labels = folder_examples(dataset)
        data = tf.data.Dataset.from_tensor_slices((paths, labels)).map(
            lambda path, label: (read_image(path), label), num_parallel_calls=tf.data.AUTOTUNE
        )
    if limit:
        data = data.take(limit)
    data = data.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def evaluate(model, data):
    """``{"top1": %, "top5": %, "n": images}`` of ``model`` over ``(images, labels)`` batches."""
    import keras

    progress = keras.utils.Progbar(None, unit_name="batch")
    correct1 = correct5 = count = 0
    for step, (images, labels) in enumerate(data, start=1):
        scores = np.asarray(model.predict_on_batch(images))
        labels = np.asarray(labels)
        top5 = np.argsort(-scores, axis=1)[:, :5]
        correct1 += int(np.sum(top5[:, 0] == labels))
        correct5 += int(np.sum(np.any(top5 == labels[:, None], axis=1)))
        count += len(labels)
        progress.update(step, [("top1", 100.0 * correct1 / count)])
    if not count:
        raise ValueError("The evaluation dataset is empty")
    return {"top1": 100.0 * correct1 / count, "top5": 100.0 * correct5 / count, "n": count}
