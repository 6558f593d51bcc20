"""Training and evaluation data: sources, ImageNet-style augmentation, tf.data pipelines.

``--dataset`` takes

- ``digits``: the 1,797 handwritten digits embedded in the package (no download), as RGB;
- ``tfds:<name>[/<config>]``: a TensorFlow Datasets dataset as the user prepared it under
  ``--data-dir`` (never downloaded here; unregistered datasets are read from their files);
- a folder of class sub-folders (with ``train/`` and ``val/``/``validation/`` inside, or split);
- a TFRecord glob in TF Model Garden's layout (``image/encoded``, ``image/class/label``); the
  validation files are found by replacing ``train`` with ``validation`` in the glob.

Every source yields ``(uint8 RGB image, int label)``; :func:`train_pipeline` and
:func:`eval_pipeline` turn that into batches normalised as :func:`eca_keras.preprocessing.normalize`
(ImageNet's mean/std: ``preprocess_input``).
"""

import dataclasses
import glob
import os
import warnings
from importlib import resources

import numpy as np
import tensorflow as tf

from eca_keras import preprocessing
from eca_keras.applications.imagenet_utils import NUM_CLASSES as NUM_IMAGENET_CLASSES
from eca_keras.applications.imagenet_utils import imagenet_classes
from eca_keras.preprocessing import IMAGENET_MEAN, IMAGENET_STD, image_file_problem, read_image

DIGITS_SIZE = 32  # the 8x8 digits are upsampled to the smallest size the models accept
VALIDATION_SPLITS = ("validation", "val", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@dataclasses.dataclass
class Splits:
    """A dataset's two splits of ``(uint8 image, label)`` and what is known about them."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    num_classes: int
    class_names: list
    train_size: int | None = None
    validation_size: int | None = None
    from_files: bool = False  # file-backed: multi-worker training shards by file
    train_paths: list | None = None  # image folders: the files, in the order of the splits
    validation_paths: list | None = None


class BadImagesError(ValueError):
    """Image files of a dataset that cannot be decoded (empty, not images, damaged)."""


def load_splits(
    dataset,
    data_dir=None,
    validation_fraction=0.2,
    seed=0,
    num_classes=None,
    evaluation=False,
    imagenet_labels=False,
    skip_bad_images=False,
):
    """Opens ``dataset`` (see the module docstring) as :class:`Splits`.

    ``evaluation``: a flat folder (no ``train/``/``val/`` inside) becomes the validation split
    whole instead of being split. ``imagenet_labels``: folders are WordNet ids labelled with their
    ImageNet-1k index (evaluating a 1000-class model on ImageNet or a subset of it).

    Image folders are checked before anything reads them: class folders without images are
    refused, and every image file's first bytes are read; an empty or non-image file is an error
    naming it. ``skip_bad_images`` instead decodes every file once and leaves out those that
    fail, with a warning that counts and names them.
    """
    if not dataset:
        raise ValueError("No dataset given: use --dataset digits, tfds:<name>, a folder or a glob")
    if dataset == "digits":
        return _digits(validation_fraction, seed)
    if dataset.startswith("tfds:"):
        return _tfds(dataset[5:], data_dir)
    if os.path.isdir(dataset):
        return _folder(
            dataset, validation_fraction, seed, evaluation, imagenet_labels, skip_bad_images
        )
    if any(char in dataset for char in "*?[") or dataset.endswith((".tfrecord", ".tfrecords")):
        return _tfrecords(dataset, num_classes)
    raise ValueError(
        f"Unknown dataset {dataset!r}: expected 'digits', 'tfds:<name>[/<config>]', an existing "
        "folder of class sub-folders, or a TFRecord glob such as 'data/train-*'"
    )


def _split_indices(count, validation_fraction, seed):
    order = np.random.default_rng(seed).permutation(count)
    cut = int(round(count * (1 - validation_fraction)))
    return order[:cut], order[cut:]


def _digits(validation_fraction, seed):
    with resources.files("eca_keras").joinpath("data", "digits.npz").open("rb") as handle:
        data = np.load(handle)
        images, labels = data["images"], data["labels"].astype("int64")
    images = np.round(images.astype("float32") * (255.0 / 16.0))[..., None]
    images = tf.image.resize(images, (DIGITS_SIZE, DIGITS_SIZE), method="bilinear").numpy()
    images = np.repeat(np.clip(np.round(images), 0, 255).astype("uint8"), 3, axis=-1)
    train, validation = _split_indices(len(labels), validation_fraction, seed)
    return Splits(
        tf.data.Dataset.from_tensor_slices((images[train], labels[train])),
        tf.data.Dataset.from_tensor_slices((images[validation], labels[validation])),
        10,
        [str(i) for i in range(10)],
        len(train),
        len(validation),
    )


def _tfds(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:
        raise ValueError(
            f"TFDS dataset {name!r} was not found (data dir: {data_dir or 'TFDS default'}): "
            f"{error}. Prepare it first (tfds build / download_and_prepare), then pass --data-dir."
        ) from error
    if not builder.is_prepared() if hasattr(builder, "is_prepared") else False:
        raise ValueError(f"TFDS dataset {name!r} is not prepared under {builder.data_dir}")
    splits = builder.info.splits
    if "train" not in splits:
        raise ValueError(f"TFDS dataset {name!r} has no 'train' split (it has {list(splits)})")
    validation = next((split for split in VALIDATION_SPLITS if split in splits), None)
    train_split, validation_split = "train", validation
    if validation is None:  # hold out the last 20% of train
        train_split, validation_split = "train[:80%]", "train[80%:]"
    label = builder.info.features["label"]

    def read(split):
        data = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        return data.map(lambda image, y: (_as_rgb(image), tf.cast(y, tf.int64)))

    return Splits(
        read(train_split),
        read(validation_split),
        label.num_classes,
        list(label.names),
        _split_size(splits, train_split),
        _split_size(splits, validation_split),
        from_files=True,
    )


def _split_size(splits, split):
    try:
        return splits[split].num_examples
    except Exception:  # pragma: no cover - sliced splits on old TFDS versions
        return None


def _as_rgb(image):
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    if image.shape[-1] == 3:
        return image
    if image.shape[-1] == 1:
        return tf.tile(image, [1, 1, 3])
    # Unknown channel count (e.g. mixed datasets): grey -> RGB, RGBA -> RGB at run time.
    return tf.cond(
        tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]), lambda: image[..., :3]
    )


def _list_images(folder, imagenet_labels=False):
    """``(class names, paths, labels)`` of a folder of class sub-folders.

    Classes are numbered in sorted order; with ``imagenet_labels`` the sub-folders must be
    WordNet ids and take their ImageNet-1k index (so a subset of ImageNet keeps its labels).
    Hidden sub-folders (``.git``, ``.ipynb_checkpoints``, ``__MACOSX``) are no classes (a warning
    lists them); a class folder without images is refused, not counted as a class.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"No such dataset folder: {folder}")
    folders = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    hidden = [name for name in folders if name.startswith((".", "__"))]
    if hidden:
        warnings.warn(f"{folder}: ignoring hidden folders {', '.join(hidden)}", stacklevel=4)
    classes = [name for name in folders if name not in hidden]
    index = {name: i for i, name in enumerate(classes)}
    if imagenet_labels:
        index = {wnid: i for i, (wnid, _) in enumerate(imagenet_classes())}
        unknown = [name for name in classes if name not in index]
        if unknown:
            raise ValueError(
                f"{folder}: class folders must be ImageNet WordNet ids for a 1000-class model; "
                f"not ids: {unknown[:5]}"
            )
    paths, labels, empty = [], [], []
    for name in classes:
        found = [
            os.path.join(root, file)
            for root, _, files in sorted(os.walk(os.path.join(folder, name)))
            for file in sorted(files)
            if file.lower().endswith(IMAGE_EXTENSIONS)
        ]
        if not found:
            empty.append(name)
        paths.extend(found)
        labels.extend([index[name]] * len(found))
    if empty and len(empty) < len(classes):
        raise ValueError(
            f"{folder}: class folders without images ({', '.join(IMAGE_EXTENSIONS)}): "
            f"{_listing(empty)}; remove them or add images (each sub-folder is a class)"
        )
    return classes, paths, labels


def _listing(items, shown=3):
    text = ", ".join(str(item) for item in items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


def undecodable_images(paths):
    """The files among ``paths`` that ``tf.io.decode_image`` cannot decode (decoded in
    parallel, once each)."""
    if not paths:
        return []
    indices = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(paths), dtype="int64"), tf.constant(list(paths), dtype=tf.string))
    )
    decoded = indices.map(
        lambda index, path: (index, tf.shape(read_image(path))[0]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    ).ignore_errors()
    readable = {int(index) for index, _ in decoded.as_numpy_iterator()}
    return [path for i, path in enumerate(paths) if i not in readable]


def check_image_files(paths, labels, skip_bad_images=False, where="the dataset"):
    """``(paths, labels)`` of image files that can be read. By default every file's first bytes
    are read and an empty or non-image file is an error naming it; ``skip_bad_images`` decodes
    every file and drops those that fail, with a warning."""
    if skip_bad_images:
        bad = set(undecodable_images(paths))
        if bad:
            warnings.warn(
                f"skipping {len(bad)} of {len(paths)} image files of {where} that cannot be "
                f"decoded: {_listing(sorted(bad))}",
                stacklevel=4,
            )
        kept = [(p, y) for p, y in zip(paths, labels, strict=True) if p not in bad]
        return [p for p, _ in kept], [y for _, y in kept]
    for path in paths:
        problem = image_file_problem(path)
        if problem:
            raise BadImagesError(
                f"{path}: {problem}. Remove it, or pass --skip-bad-images to leave out every "
                "file that cannot be decoded"
            )
    return paths, labels


def name_undecodable(paths, error, where="the dataset"):
    """A :class:`BadImagesError` naming the files among ``paths`` that cannot be decoded (found
    by decoding them), for a TensorFlow ``error`` met while reading ``where``."""
    from eca_keras.preprocessing import tensorflow_reason

    bad = undecodable_images(paths) if paths else []
    if not bad:
        return BadImagesError(f"An image of {where} could not be read: {tensorflow_reason(error)}")
    return BadImagesError(
        f"{_listing(bad)}: cannot be decoded as images ({tensorflow_reason(error)}). Remove "
        f"{'it' if len(bad) == 1 else 'them'}, or pass --skip-bad-images to leave out every "
        "file that cannot be decoded"
    )


def is_decode_error(error):
    """Whether a TensorFlow error raised while iterating a dataset is an image decoding one."""
    text = (getattr(error, "message", None) or str(error)).lower()
    return isinstance(error, tf.errors.InvalidArgumentError) and any(
        word in text for word in ("decode", "image", "jpeg", "png", "gif", "bmp", "webp")
    )


def _decode_files(paths, labels):
    paths = tf.constant(paths, dtype=tf.string)  # typed even when empty
    data = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, "int64")))
    return data.map(lambda path, y: (read_image(path), y), num_parallel_calls=tf.data.AUTOTUNE)


def validation_folder(folder):
    """``folder``'s ``validation``/``val``/``test`` sub-folder, or None."""
    candidates = (os.path.join(folder, split) for split in VALIDATION_SPLITS)
    return next((path for path in candidates if os.path.isdir(path)), None)


def _folder(folder, validation_fraction, seed, evaluation, imagenet_labels, skip_bad_images):
    train_dir = os.path.join(folder, "train")
    validation_dir = validation_folder(folder)
    if os.path.isdir(train_dir) and validation_dir:
        classes, train_paths, train_labels = _list_images(train_dir, imagenet_labels)
        validation_classes, val_paths, val_labels = _list_images(validation_dir, imagenet_labels)
        if validation_classes != classes:
            raise ValueError(
                f"{train_dir} and {validation_dir} have different class folders: "
                f"{classes} vs {validation_classes}"
            )
        train_paths, train_labels = check_image_files(
            train_paths, train_labels, skip_bad_images, train_dir
        )
        val_paths, val_labels = check_image_files(
            val_paths, val_labels, skip_bad_images, validation_dir
        )
    else:
        classes, paths, labels = _list_images(folder, imagenet_labels)
        paths, labels = check_image_files(paths, labels, skip_bad_images, folder)
        if evaluation:  # a flat folder given to evaluate is the evaluation set, whole
            train, validation = [], range(len(paths))
        else:
            train, validation = _split_indices(len(paths), validation_fraction, seed)
        train_paths, train_labels = [paths[i] for i in train], [labels[i] for i in train]
        val_paths, val_labels = [paths[i] for i in validation], [labels[i] for i in validation]
    if len(classes) < 2 or not val_paths or not (train_paths or evaluation):
        raise ValueError(
            f"{folder} needs at least two class sub-folders with images "
            f"({', '.join(IMAGE_EXTENSIONS)}); found {len(classes)} classes and "
            f"{len(train_paths) + len(val_paths)} images"
        )
    num_classes = NUM_IMAGENET_CLASSES if imagenet_labels else len(classes)
    return Splits(
        _decode_files(train_paths, train_labels),
        _decode_files(val_paths, val_labels),
        num_classes,
        classes,
        len(train_paths),
        len(val_paths),
        from_files=True,
        train_paths=train_paths,
        validation_paths=val_paths,
    )


_RECORD_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string),
    "image/class/label": tf.io.FixedLenFeature((), tf.int64),
}


def _read_records(files):
    data = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)

    def parse(record):
        example = tf.io.parse_single_example(record, _RECORD_FEATURES)
        image = tf.io.decode_image(example["image/encoded"], channels=3, expand_animations=False)
        return image, example["image/class/label"]

    return data.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def _tfrecords(pattern, num_classes):
    train_files = sorted(glob.glob(pattern))
    if not train_files:
        raise ValueError(f"No TFRecord files match {pattern!r}")
    folder, name = os.path.split(pattern)  # only the file-name part says "train"
    candidates = [os.path.join(folder, name.replace("train", s)) for s in ("validation", "val")]
    validation_files = sorted(
        {file for candidate in candidates for file in glob.glob(candidate)}
        if "train" in name
        else ()
    )
    if not validation_files:
        raise ValueError(
            f"No validation files found for {pattern!r}: name them like the training files with "
            "'validation' (or 'val') in place of 'train'"
        )
    if num_classes is None:  # count the labels (parsing labels only); large datasets pass it
        train_size, num_classes = _scan_labels(train_files)
    else:  # the number of records, read without parsing or decoding
        records = tf.data.TFRecordDataset(train_files, num_parallel_reads=tf.data.AUTOTUNE)
        train_size = int(records.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))
    return Splits(
        _read_records(train_files),
        _read_records(validation_files),
        num_classes,
        [str(i) for i in range(num_classes)],
        train_size,
        from_files=True,
    )


def _scan_labels(files):
    """``(examples, classes)`` of TFRecord files, reading only their labels (no decoding)."""
    label = {"image/class/label": _RECORD_FEATURES["image/class/label"]}
    labels = tf.data.TFRecordDataset(files).map(
        lambda record: tf.io.parse_single_example(record, label)["image/class/label"],
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    count, largest = 0, -1
    for batch in labels.batch(65536):
        count += int(batch.shape[0])
        largest = max(largest, int(tf.reduce_max(batch)))
    return count, largest + 1


def random_resized_crop(image, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
    """Inception-style crop: random area fraction in ``scale`` and aspect ratio in ``ratio``.
    ``seed`` (a shape-(2,) integer tensor) makes it a stateless function of the seed."""
    if seed is None:
        seed = tf.random.uniform((2,), maxval=2**31 - 1, dtype=tf.int32)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4)),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.ensure_shape(image, (size, size, 3))


def _finish(data, batch_size, num_classes, drop_remainder):
    def one_hot(image, label):
        return image, tf.one_hot(label, num_classes)

    data = data.map(one_hot, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def train_pipeline(
    splits,
    image_size,
    batch_size,
    augment,
    seed=None,
    shard_by_files=True,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
):
    """Shuffled, augmented, normalised, one-hot ``(images, labels)`` batches of ``batch_size``.

    ``augment``: ``{"crop_scale": [lo, hi], "crop_ratio": [lo, hi], "flip": bool}``; ``mean``
    and ``std``: the normalisation (ImageNet's by default, as the evaluation's).

    With a ``seed`` the batches are reproducible: the shuffle is seeded and every image's crop
    and flip are stateless functions of a seed drawn from a seeded stream (another stream each
    repetition of the dataset), so the parallel map's scheduling cannot change them.
    """
    scale = tuple(augment.get("crop_scale", (0.08, 1.0)))
    ratio = tuple(augment.get("crop_ratio", (3 / 4, 4 / 3)))
    flip = bool(augment.get("flip", True))

    def transform(example, seeds):
        image, label = example
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seeds, 2))
        image = random_resized_crop(image, image_size, scale, ratio, seed=crop_seed)
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        return preprocessing.normalize(tf.clip_by_value(image, 0.0, 255.0), mean, std), label

    data = splits.train.shuffle(
        min(splits.train_size or 10_000, 10_000), seed=seed, reshuffle_each_iteration=True
    )
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    data = tf.data.Dataset.zip((data, seeds))
    data = data.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    data = _finish(data, batch_size, splits.num_classes, drop_remainder=True)
    return data.with_options(_shard_options(splits.from_files and shard_by_files))


def eval_pipeline(splits, config, batch_size, normalize=True):
    """Deterministic ``(images, one-hot labels)`` batches of the validation split, transformed
    by ``config`` (an ``EvalConfig``: resize, center crop) and normalised; with
    ``normalize=False``, uint8 pixels (:func:`eval_pixels`) for exported models."""

    def transform(image, label):
        if not normalize:
            return preprocessing.eval_pixels(image, config), label
        pixels = preprocessing.eval_transform(image, config)
        return preprocessing.normalize(pixels, config.mean, config.std), label

    data = splits.validation.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    data = _finish(data, batch_size, splits.num_classes, drop_remainder=False)
    return data.with_options(_shard_options(splits.from_files))


def _shard_options(by_files):
    """Multi-worker training shards each worker's input: by file where there are files, else by
    element (in-memory data). The option is ignored by single-worker strategies."""
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = policy.AUTO if by_files else policy.DATA
    return options
