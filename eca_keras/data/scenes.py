"""The embedded detection and segmentation data: digit scenes, generated in code, no download.

Each scene is a canvas (dark, noisy, of a random colour) with one to ``max_objects`` of the
package's 8x8 handwritten digits (``digits.npz``) drawn on it in bright random colours, each
scaled to a random square size and placed without overlapping the others. An object's mask is
where its digit's ink covers at least half a pixel; its box is the box of that mask; its class is
the digit. The scenes of the training split use only the digits of the classification
training split, and those of the validation split only the held-out digits (the same 80/20
split as ``--dataset digits``), so validation scenes are new images of new handwriting.

Everything is a function of the seed: the same arguments give the same pixels.
"""

import dataclasses
from importlib import resources

import numpy as np

DIGIT_NAMES = [str(digit) for digit in range(10)]
CANVAS_SIZE = 96
OBJECT_SIZES = (20, 40)  # smallest and largest side of a digit, in pixels
MAX_OBJECTS = 3
TRAIN_SCENES, VALIDATION_SCENES = 2000, 200
VALIDATION_FRACTION = 0.2  # of the digits, as --dataset digits splits them
INK_THRESHOLD = 0.5  # of full intensity: a pixel of the mask


@dataclasses.dataclass
class Scene:
    """One image with its objects: boxes ``(n, 4)`` as ``x1, y1, x2, y2`` in pixels (float32),
    class indices ``(n,)``, and the class mask ``(H, W)`` (0 background, ``1 + class``)."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    mask: np.ndarray


def load_digits():
    """The embedded digits: ``(images (1797, 8, 8) float32 in [0, 1], labels (1797,) int)``."""
    with resources.files("eca_keras").joinpath("data", "digits.npz").open("rb") as handle:
        data = np.load(handle)
        return data["images"].astype("float32") / 16.0, data["labels"].astype("int64")


def split_digits(count, seed=0, validation_fraction=VALIDATION_FRACTION):
    """``(train indices, validation indices)``: the split of ``--dataset digits``."""
    order = np.random.default_rng(seed).permutation(count)
    cut = int(round(count * (1 - validation_fraction)))
    return order[:cut], order[cut:]


def _scale_digit(digit, size):
    """An 8x8 digit in [0, 1] resized to ``size x size`` (bilinear, PIL), in [0, 1]."""
    from PIL import Image

    image = Image.fromarray(digit.astype("float32"), mode="F")
    return np.clip(np.asarray(image.resize((size, size), Image.BILINEAR)), 0.0, 1.0)


def make_scene(rng, digits, labels, canvas_size, object_sizes, max_objects):
    """One :class:`Scene` drawn with ``rng`` from ``digits`` (``(n, 8, 8)`` in [0, 1])."""
    background = rng.uniform(0, 70, 3)
    noise = rng.uniform(-20, 20, (canvas_size, canvas_size, 3))
    canvas = np.clip(background + noise, 0, 255)
    mask = np.zeros((canvas_size, canvas_size), "uint8")
    taken = np.zeros((canvas_size, canvas_size), bool)
    boxes, classes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        index = int(rng.integers(len(digits)))
        size = int(rng.integers(object_sizes[0], object_sizes[1] + 1))
        for _attempt in range(20):  # a free place, else no object
            top, left = rng.integers(0, canvas_size - size + 1, 2)
            if not taken[top : top + size, left : left + size].any():
                break
        else:
            continue
        ink = _scale_digit(digits[index], size)
        inked = ink >= INK_THRESHOLD
        if not inked.any():
            continue
        colour = rng.uniform(150, 255, 3)
        window = canvas[top : top + size, left : left + size]
        window[:] = window * (1 - ink[..., None]) + colour * ink[..., None]
        taken[top : top + size, left : left + size] = True
        mask[top : top + size, left : left + size][inked] = labels[index] + 1
        rows, columns = np.nonzero(inked)
        x1, y1 = left + columns.min(), top + rows.min()
        boxes.append([x1, y1, left + columns.max() + 1, top + rows.max() + 1])
        classes.append(labels[index])
    return Scene(
        np.round(canvas).astype("uint8"),
        np.asarray(boxes, "float32").reshape(-1, 4),
        np.asarray(classes, "int64"),
        mask,
    )


def digit_scenes(
    count,
    split="train",
    seed=0,
    canvas_size=CANVAS_SIZE,
    object_sizes=OBJECT_SIZES,
    max_objects=MAX_OBJECTS,
):
    """``count`` scenes of the ``"train"`` or ``"validation"`` digits (see the module doc)."""
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation'; received {split!r}")
    low, high = object_sizes
    if not 1 <= low <= high <= canvas_size:
        raise ValueError(
            f"object sizes {object_sizes} must be at least 1 and at most the canvas "
            f"({canvas_size} px)"
        )
    digits, labels = load_digits()
    train, validation = split_digits(len(labels), seed)
    chosen = train if split == "train" else validation
    # Independent streams: the validation scenes do not depend on how many training scenes.
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    return [
        make_scene(rng, digits[chosen], labels[chosen], canvas_size, object_sizes, max_objects)
        for _ in range(count)
    ]
