"""Reading COCO-format data (an instances JSON and an image folder), checked before training.

The file is read with the standard library and indexed by ``pycocotools`` (whose ``COCO`` object
is also the ground truth of ``COCOeval``). What would make training or scoring wrong is refused
with one line naming the file, the annotation and what to do: an empty annotation list, an
annotation of an unknown image or category, a box outside its image (by more than
:data:`BOX_TOLERANCE` pixels; within it, the box is clipped), a box of negative size, an image
file that is missing.
"""

import json
import os

import numpy as np

from eca_keras.data.annotated import AnnotatedImages

BOX_TOLERANCE = 1.0  # pixels a box may stick out of its image (rounding in exporters)
VALIDATION_FRACTION = 0.2


class CocoFormatError(ValueError):
    """A COCO file that cannot be trained on or scored as it is."""


def read_coco(path, image_dir=None):
    """:class:`AnnotatedImages` of the COCO instances file ``path``; images are read from
    ``image_dir`` (default: the file's folder) by each image's ``file_name``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such COCO annotation file: {path}")
    image_dir = os.fspath(image_dir) if image_dir else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"No such image folder: {image_dir} (the images of {path})")
    try:
        with open(path, encoding="utf-8") as handle:
            dataset = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CocoFormatError(f"{path} is not a JSON file: {error}") from None
    check_dataset(dataset, path)
    _check_image_files(dataset, image_dir, path)
    return AnnotatedImages(dataset, image_dir=image_dir, source=path)


def check_dataset(dataset, path):
    """Raises :class:`CocoFormatError` where ``dataset`` (a parsed instances file) cannot be
    used (see the module docstring); clips boxes that stick out by less than the tolerance."""
    if not isinstance(dataset, dict):
        raise CocoFormatError(f"{path} is not a COCO instances file (a JSON object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise CocoFormatError(f"{path} has no {key!r} list: not a COCO instances file")
    if not dataset["annotations"]:
        raise CocoFormatError(
            f"{path} has an empty annotation list: there is nothing to learn or score; "
            "export the annotations with the images"
        )
    if not dataset["categories"]:
        raise CocoFormatError(f"{path} has no categories")
    categories = {category["id"] for category in dataset["categories"]}
    images = {image["id"]: image for image in dataset["images"]}
    for image in dataset["images"]:
        if not all(key in image for key in ("file_name", "width", "height")):
            raise CocoFormatError(
                f"{path}: image {image.get('id')} needs 'file_name', 'width' and 'height'"
            )
    for annotation in dataset["annotations"]:
        _check_annotation(annotation, images, categories, path)


def _check_annotation(annotation, images, categories, path):
    name = f"{path}: annotation {annotation.get('id')}"
    if annotation.get("image_id") not in images:
        raise CocoFormatError(
            f"{name} belongs to image {annotation.get('image_id')}, which the file does not list"
        )
    if annotation.get("category_id") not in categories:
        raise CocoFormatError(
            f"{name} has category id {annotation.get('category_id')}, which is not among the "
            f"file's categories ({', '.join(str(c) for c in sorted(categories))})"
        )
    box = annotation.get("bbox")
    if not (isinstance(box, list) and len(box) == 4):
        raise CocoFormatError(f"{name} has no 'bbox' [x, y, width, height]")
    x, y, width, height = (float(value) for value in box)
    if width < 0 or height < 0:
        raise CocoFormatError(f"{name} has a box of negative size {box}")
    image = images[annotation["image_id"]]
    limits = float(image["width"]), float(image["height"])
    if (
        min(x, y) < -BOX_TOLERANCE
        or x + width > limits[0] + BOX_TOLERANCE
        or y + height > limits[1] + BOX_TOLERANCE
    ):
        raise CocoFormatError(
            f"{name}: box {box} (x, y, width, height) is outside its image "
            f"{image['file_name']} ({image['width']}x{image['height']}); fix or drop it"
        )
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x + width, limits[0]), min(y + height, limits[1])
    annotation["bbox"] = [x1, y1, x2 - x1, y2 - y1]
    annotation.setdefault("area", (x2 - x1) * (y2 - y1))
    annotation.setdefault("iscrowd", 0)


def _check_image_files(dataset, image_dir, path):
    missing = [
        image["file_name"]
        for image in dataset["images"]
        if not os.path.isfile(os.path.join(image_dir, image["file_name"]))
    ]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the {len(dataset['images'])} images of {path} are not in "
            f"{image_dir} (first: {missing[0]}); pass the image folder with --images"
        )


def split(data, seed=0, validation_fraction=VALIDATION_FRACTION):
    """``(train, validation)``: ``data``'s images split at random (``seed``), 80/20."""
    order = np.random.default_rng(seed).permutation(len(data.image_ids))
    cut = int(round(len(order) * (1 - validation_fraction)))
    if cut == 0 or cut == len(order):
        raise CocoFormatError(
            f"{data.source} has {len(order)} images, too few to hold some out for validation; "
            "pass a validation file"
        )
    parts = []
    for indices in (order[:cut], order[cut:]):
        ids = {data.image_ids[i] for i in indices}
        subset = {
            **data.dataset,
            "images": [image for image in data.dataset["images"] if image["id"] in ids],
            "annotations": [a for a in data.dataset["annotations"] if a["image_id"] in ids],
        }
        parts.append(AnnotatedImages(subset, image_dir=data.image_dir, source=data.source))
    return tuple(parts)


def write_coco(data, path, image_dir):
    """Writes ``data`` (e.g. the embedded scenes) as a COCO instances file and PNG images, so
    that any COCO tool can read it; returns ``path``."""
    from PIL import Image

    from eca_keras.files import write_atomically

    os.makedirs(image_dir, exist_ok=True)
    for image_id in data.image_ids:
        file_name = data.images[image_id]["file_name"]
        Image.fromarray(data.image(image_id)).save(os.path.join(image_dir, file_name))
    write_atomically(path, json.dumps(data.dataset))
    return path
