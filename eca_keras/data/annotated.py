"""Annotated images as COCO describes them, and fitting them into a model's square input.

An :class:`AnnotatedImages` is a COCO-format dataset (the ``images``, ``annotations`` and
``categories`` of an instances file) with where its pixels come from: an image folder (read
with PIL), or arrays in memory (the embedded digit scenes of :mod:`eca_keras.data.scenes`). The
same object is the ground truth ``pycocotools``' ``COCOeval`` scores detections against.

Classes are the categories in the order of their ids, numbered from 0 (detection) or from 1 in
masks (0 is the background). Images of any size are letterboxed into the model's square input:
scaled so that the longer side fits, centred and padded (as keras-hub's image converter does with
``pad_to_aspect_ratio=True``); boxes and masks follow, and predictions are mapped back.
"""

import contextlib
import dataclasses
import io
import os

import numpy as np

from eca_keras.data import scenes

IGNORE_LABEL = 255  # mask pixels that are padding: no loss, not scored


@dataclasses.dataclass
class AnnotatedImages:
    """A COCO-format dataset and its pixels (see the module docstring)."""

    dataset: dict  # COCO: {"images": [...], "annotations": [...], "categories": [...]}
    image_dir: str | None = None
    pixels: dict | None = None  # image id -> uint8 (H, W, 3), for data held in memory
    masks: dict | None = None  # image id -> uint8 (H, W) class mask, for data held in memory
    source: str = ""

    def __post_init__(self):
        self.category_ids = sorted(category["id"] for category in self.dataset["categories"])
        names = {category["id"]: str(category["name"]) for category in self.dataset["categories"]}
        self.class_names = [names[category] for category in self.category_ids]
        self.class_of = {category: index for index, category in enumerate(self.category_ids)}
        self.image_ids = [image["id"] for image in self.dataset["images"]]
        self.images = {image["id"]: image for image in self.dataset["images"]}
        self.annotations = {image_id: [] for image_id in self.image_ids}
        for annotation in self.dataset["annotations"]:
            self.annotations[annotation["image_id"]].append(annotation)
        self._coco = None

    def __len__(self):
        return len(self.image_ids)

    @property
    def num_classes(self):
        return len(self.category_ids)

    def image(self, image_id):
        """The image's uint8 RGB pixels ``(H, W, 3)``."""
        if self.pixels is not None:
            return self.pixels[image_id]
        from PIL import Image

        path = os.path.join(self.image_dir, self.images[image_id]["file_name"])
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    def targets(self, image_id):
        """``(boxes (n, 4) x1 y1 x2 y2 in pixels, class indices (n,))`` of the image's objects,
        crowd regions left out (COCOeval ignores detections there; they teach nothing)."""
        kept = [a for a in self.annotations[image_id] if not a.get("iscrowd", 0)]
        boxes = np.asarray([a["bbox"] for a in kept], "float32").reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = np.asarray([self.class_of[a["category_id"]] for a in kept], "int64")
        return boxes, labels

    def mask(self, image_id):
        """The class mask ``(H, W)`` uint8: 0 background, ``1 + class`` where an object is (the
        larger object first, so a smaller one on top of it stays visible)."""
        if self.masks is not None:
            return self.masks[image_id]
        info = self.images[image_id]
        mask = np.zeros((info["height"], info["width"]), "uint8")
        coco = self.ground_truth()
        for annotation in sorted(self.annotations[image_id], key=lambda a: -a.get("area", 0)):
            if "segmentation" not in annotation:
                raise ValueError(
                    f"{self.source}: annotation {annotation.get('id')} has no 'segmentation': "
                    "segmentation needs masks (polygons or RLE)"
                )
            pixels = coco.annToMask(annotation).astype(bool)
            mask[pixels] = self.class_of[annotation["category_id"]] + 1
        return mask

    def ground_truth(self):
        """The ``pycocotools.coco.COCO`` index of this dataset (COCOeval's ground truth)."""
        if self._coco is None:
            from pycocotools.coco import COCO

            coco = COCO()
            coco.dataset = self.dataset
            with contextlib.redirect_stdout(io.StringIO()):  # "creating index..." chatter
                coco.createIndex()
            self._coco = coco
        return self._coco


def scenes_as_coco(scene_list, class_names=scenes.DIGIT_NAMES, source="digits"):
    """Digit scenes as :class:`AnnotatedImages` (image ids from 1, category id = class + 1)."""
    images, annotations, pixels, masks = [], [], {}, {}
    for image_id, scene in enumerate(scene_list, start=1):
        height, width = scene.mask.shape
        name = f"{image_id:06d}.png"
        images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        pixels[image_id], masks[image_id] = scene.image, scene.mask
        for box, label in zip(scene.boxes, scene.labels, strict=True):
            x1, y1, x2, y2 = (float(value) for value in box)
            window = scene.mask[int(y1) : int(y2), int(x1) : int(x2)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(np.count_nonzero(window == label + 1)),  # mask pixels
                    "iscrowd": 0,
                }
            )
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(class_names)]
    dataset = {"images": images, "annotations": annotations, "categories": categories}
    return AnnotatedImages(dataset, pixels=pixels, masks=masks, source=source)


def letterbox_geometry(height, width, size):
    """``(scale, top, left)``: the image scaled by ``scale`` (its longer side ``size``) sits
    at ``(top, left)`` of the ``size x size`` input."""
    scale = size / max(height, width)
    new_height, new_width = round(height * scale), round(width * scale)
    return scale, (size - new_height) // 2, (size - new_width) // 2


def letterbox(image, size, mask=None):
    """``image`` (uint8 ``(H, W, 3)``) letterboxed into ``size x size`` (bilinear), and ``mask``
    with it (nearest, padding :data:`IGNORE_LABEL`); returns ``(image, mask, geometry)``."""
    from PIL import Image

    height, width = image.shape[:2]
    scale, top, left = letterbox_geometry(height, width, size)
    new_size = (round(width * scale), round(height * scale))
    boxed = np.zeros((size, size, 3), "uint8")
    if new_size == (width, height):
        resized = image
    else:
        resized = np.asarray(Image.fromarray(image).resize(new_size, Image.BILINEAR))
    boxed[top : top + new_size[1], left : left + new_size[0]] = resized
    boxed_mask = None
    if mask is not None:
        boxed_mask = np.full((size, size), IGNORE_LABEL, "uint8")
        if new_size != (width, height):
            mask = np.asarray(Image.fromarray(mask).resize(new_size, Image.NEAREST))
        boxed_mask[top : top + new_size[1], left : left + new_size[0]] = mask
    return boxed, boxed_mask, (scale, top, left)


def to_input_boxes(boxes, geometry):
    """Boxes (x1, y1, x2, y2) of the original image in the letterboxed input."""
    scale, top, left = geometry
    return boxes * scale + np.asarray([left, top, left, top], "float32")


def to_image_boxes(boxes, geometry, height, width):
    """Boxes of the letterboxed input back in the original image, clipped to it."""
    scale, top, left = geometry
    boxes = (np.asarray(boxes, "float32") - np.asarray([left, top, left, top], "float32")) / scale
    return np.clip(boxes, 0, [width, height, width, height]).astype("float32")
