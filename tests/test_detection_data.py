"""Detection and segmentation data: the embedded digit scenes, the COCO reader (on small files
written here, checked against pycocotools' own reading and hand-made masks), its clear errors,
letterboxing, and COCOeval scoring through :func:`eca_keras.tasks.detection.coco_map`."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pycocotools")
from PIL import Image  # noqa: E402

from eca_keras.data import coco, scenes  # noqa: E402
from eca_keras.data.annotated import (  # noqa: E402
    IGNORE_LABEL,
    letterbox,
    scenes_as_coco,
    to_image_boxes,
    to_input_boxes,
)
from eca_keras.data.detection import detection_batches, load_splits  # noqa: E402


def test_scenes_are_deterministic_and_validation_digits_are_held_out():
    first = scenes.digit_scenes(5, "validation", seed=3)
    again = scenes.digit_scenes(5, "validation", seed=3)
    other = scenes.digit_scenes(5, "validation", seed=4)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].image, other[0].image)
    train, validation = scenes.split_digits(1797, seed=0)
    assert not set(train) & set(validation) and len(train) + len(validation) == 1797


def test_scene_boxes_enclose_their_masks():
    """Each box is the bounding box of its object's mask pixels (objects never overlap)."""
    for scene in scenes.digit_scenes(20, "train", seed=0):
        assert scene.image.shape == (96, 96, 3) and scene.image.dtype == np.uint8
        assert 1 <= len(scene.labels) <= scenes.MAX_OBJECTS
        covered = np.zeros(scene.mask.shape, bool)
        for box, label in zip(scene.boxes.astype(int), scene.labels, strict=True):
            x1, y1, x2, y2 = box
            inside = scene.mask[y1:y2, x1:x2] == label + 1
            rows, columns = np.nonzero(inside)
            assert (rows.min(), columns.min()) == (0, 0)
            assert (rows.max() + 1, columns.max() + 1) == (y2 - y1, x2 - x1)
            assert 20 * 0.25 <= max(x2 - x1, y2 - y1) <= 40
            covered[y1:y2, x1:x2] |= inside
        assert np.array_equal(covered, scene.mask > 0)  # no mask pixel outside every box


def write_images(folder, sizes):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for index, (width, height) in enumerate(sizes):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image{index}.png")


def small_coco(tmp_path, **changes):
    """Two images (40x30, 20x20), categories with ids 7 and 3 (so class 0 is id 3), a polygon,
    a rectangle given as RLE-free polygon, and a crowd region."""
    write_images(tmp_path / "images", [(40, 30), (20, 20)])
    dataset = {
        "images": [
            {"id": 11, "file_name": "image0.png", "width": 40, "height": 30},
            {"id": 12, "file_name": "image1.png", "width": 20, "height": 20},
        ],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 7, "bbox": [2, 4, 10, 6], "area": 60,
             "iscrowd": 0, "segmentation": [[2, 4, 12, 4, 12, 10, 2, 10]]},
            {"id": 2, "image_id": 11, "category_id": 3, "bbox": [20, 10, 20, 20], "area": 400,
             "iscrowd": 0, "segmentation": [[20, 10, 40, 10, 40, 30, 20, 30]]},
            {"id": 3, "image_id": 12, "category_id": 3, "bbox": [0, 0, 5, 5], "area": 25,
             "iscrowd": 1, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]},
        ],
    }  # fmt: skip
    for key, value in changes.items():
        dataset[key] = value(dataset[key]) if callable(value) else value
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(dataset))
    return path


def test_coco_reader(tmp_path):
    from pycocotools.coco import COCO

    path = small_coco(tmp_path)
    data = coco.read_coco(path, tmp_path / "images")
    assert data.class_names == ["dog", "cat"] and data.category_ids == [3, 7]
    assert data.image_ids == [11, 12] and len(data) == 2
    boxes, labels = data.targets(11)
    np.testing.assert_array_equal(boxes, [[2, 4, 12, 10], [20, 10, 40, 30]])
    np.testing.assert_array_equal(labels, [1, 0])  # cat is id 7: class 1
    boxes, labels = data.targets(12)  # the crowd region teaches nothing
    assert boxes.shape == (0, 4) and labels.shape == (0,)
    image = data.image(11)
    assert image.shape == (30, 40, 3)
    np.testing.assert_array_equal(image, np.asarray(Image.open(tmp_path / "images/image0.png")))
    expected = np.zeros((30, 40), "uint8")
    expected[10:30, 20:40] = 1  # dog: class 0 -> mask value 1
    expected[4:10, 2:12] = 2  # cat
    reference = COCO(str(path))  # pycocotools reading the file itself agrees with the reader
    for annotation in reference.loadAnns(reference.getAnnIds(imgIds=[11])):
        value = 1 + data.category_ids.index(annotation["category_id"])
        assert np.all(expected[reference.annToMask(annotation) > 0] == value)
    np.testing.assert_array_equal(data.mask(11), expected)
    assert data.ground_truth().getAnnIds() == reference.getAnnIds()


def test_coco_split_and_write_read_back(tmp_path):
    digits = scenes_as_coco(scenes.digit_scenes(10, "validation"))
    path = coco.write_coco(digits, tmp_path / "scenes.json", tmp_path / "png")
    again = coco.read_coco(path, tmp_path / "png")
    assert again.image_ids == digits.image_ids and again.class_names == digits.class_names
    for image_id in digits.image_ids:
        np.testing.assert_array_equal(again.image(image_id), digits.image(image_id))
        np.testing.assert_array_equal(again.targets(image_id)[0], digits.targets(image_id)[0])
    train, validation = coco.split(again, seed=0)
    assert len(train) == 8 and len(validation) == 2
    assert not set(train.image_ids) & set(validation.image_ids)
    assert all(a["image_id"] in validation.image_ids for a in validation.dataset["annotations"])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"annotations": []}, "empty annotation list"),
        (
            {"annotations": lambda a: [*a[:1], {**a[1], "category_id": 99}]},
            "annotation 2 has category id 99, which is not among the file's categories",
        ),
        (
            {"annotations": lambda a: [{**a[0], "bbox": [35, 4, 10, 6]}, *a[1:]]},
            r"annotation 1: box \[35, 4, 10, 6\] .* is outside its image image0.png \(40x30\)",
        ),
        (
            {"annotations": lambda a: [{**a[0], "image_id": 5}, *a[1:]]},
            "annotation 1 belongs to image 5, which the file does not list",
        ),
    ],
    ids=["empty", "unknown-category", "box-outside", "unknown-image"],
)
def test_coco_errors_are_one_clear_line(tmp_path, changes, message):
    path = small_coco(tmp_path, **changes)
    with pytest.raises(coco.CocoFormatError, match=message) as error:
        coco.read_coco(path, tmp_path / "images")
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_missing_images_and_boxes_within_tolerance(tmp_path):
    path = small_coco(tmp_path, annotations=lambda a: [{**a[0], "bbox": [-0.5, 4, 41, 6]}, *a[1:]])
    boxes, _ = coco.read_coco(path, tmp_path / "images").targets(11)
    np.testing.assert_array_equal(boxes[0], [0, 4, 40, 10])  # clipped to the image
    (tmp_path / "images/image1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of the 2 images .* \(first: image1.png\)"):
        coco.read_coco(path, tmp_path / "images")


def test_cli_reports_a_bad_coco_file_in_one_line(tmp_path):
    path = small_coco(tmp_path, annotations=[])
    result = subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", "train", "--task", "detection", "--dataset",
         str(path), "--images", str(tmp_path / "images"), "--model-dir", str(tmp_path / "run")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("eca-keras train: error: ") and "empty annotation list" in lines[-1]


def test_letterbox_round_trip():
    image = np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    mask = np.zeros((30, 60), "uint8")
    mask[10:20, 30:50] = 4
    boxed, boxed_mask, geometry = letterbox(image, 96, mask)
    assert boxed.shape == (96, 96, 3) and geometry == (1.6, 24, 0)
    assert np.all(boxed_mask[:24] == IGNORE_LABEL) and np.all(boxed_mask[72:] == IGNORE_LABEL)
    box = np.asarray([[30, 10, 50, 20]], "float32")
    moved = to_input_boxes(box, geometry)
    np.testing.assert_allclose(moved, [[48, 40, 80, 56]])
    rows, columns = np.nonzero(boxed_mask == 4)
    assert (columns.min(), rows.min(), columns.max() + 1, rows.max() + 1) == (48, 40, 80, 56)
    np.testing.assert_allclose(to_image_boxes(moved, geometry, 30, 60), box)


def test_detection_batches_pad_boxes():
    train, validation = load_splits("digits")
    assert len(train) == scenes.TRAIN_SCENES and len(validation) == scenes.VALIDATION_SCENES
    assert train.class_names == [str(digit) for digit in range(10)]
    images, targets = next(iter(detection_batches(validation, 96, 8)))
    assert images.shape == (8, 96, 96, 3) and images.dtype.name == "uint8"
    counts = [len(validation.targets(i)[1]) for i in validation.image_ids[:8]]
    assert targets["boxes"].shape == (8, max(counts), 4)
    for row, count in enumerate(counts):
        labels = targets["labels"].numpy()[row]
        assert np.all(labels[:count] >= 0) and np.all(labels[count:] == -1)
        np.testing.assert_allclose(
            targets["boxes"].numpy()[row, :count], validation.targets(validation.image_ids[row])[0]
        )


def test_coco_map_is_cocoeval():
    """Perfect detections score 1, none 0, boxes shifted off their objects less."""
    from eca_keras.tasks.detection import coco_map

    data = scenes_as_coco(scenes.digit_scenes(6, "validation"))
    truth = data.dataset["annotations"]
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
         "score": 0.9}
        for a in truth
    ]  # fmt: skip
    assert coco_map(data, perfect) == {"map": 1.0, "map50": 1.0, "map75": 1.0}
    assert coco_map(data, []) == {"map": 0.0, "map50": 0.0, "map75": 0.0}
    shifted = [{**d, "bbox": [d["bbox"][0] + d["bbox"][2] / 2, *d["bbox"][1:]]} for d in perfect]
    assert coco_map(data, shifted)["map50"] < 0.5
