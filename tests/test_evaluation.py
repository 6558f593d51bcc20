"""The evaluation transform and `eca-keras evaluate` on an ImageNet-style folder."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from eca_keras.applications import ECAMobileNetV2, preprocess_input
from eca_keras.data.classification import _list_images, load_splits
from eca_keras.predict import prepare_image
from eca_keras.preprocessing import EvalConfig, eval_transform

WNIDS = {"n01440764": 0, "n01443537": 1, "n15075141": 999}


def test_eval_transform_is_resize_then_center_crop():
    image = np.random.default_rng(0).integers(0, 256, (256, 320, 3)).astype("uint8")
    # 224 / 0.875 = 256 = the short side already: no resampling, only the center crop.
    out = eval_transform(tf.constant(image), EvalConfig(224, 0.875)).numpy()
    np.testing.assert_allclose(out, image[16:240, 48:272].astype("float32"), atol=1e-3)
    small = eval_transform(tf.constant(image[:100, :150]), EvalConfig(64, 0.5)).numpy()
    assert small.shape == (64, 64, 3)  # short side 100 -> 128, long 150 -> 192, crop 64


@pytest.fixture
def imagenet_folder(tmp_path):
    rng = np.random.default_rng(1)
    for wnid in WNIDS:
        (tmp_path / wnid).mkdir()
        for i in range(3):
            size = (int(rng.integers(60, 120)), int(rng.integers(60, 120)), 3)
            pixels = rng.integers(0, 256, size).astype("uint8")
            tf.io.write_file(str(tmp_path / wnid / f"{i}.png"), tf.io.encode_png(pixels))
    (tmp_path / "n01440764" / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_labels_follow_imagenet_indices(imagenet_folder, tmp_path_factory):
    classes, paths, labels = _list_images(str(imagenet_folder), imagenet_labels=True)
    assert classes == sorted(WNIDS) and len(paths) == 9 and sorted(set(labels)) == [0, 1, 999]
    assert sorted(set(_list_images(str(imagenet_folder))[2])) == [0, 1, 2]  # training numbering
    splits = load_splits(str(imagenet_folder), evaluation=True, imagenet_labels=True)
    assert splits.num_classes == 1000 and splits.validation_size == 9  # a flat folder, whole
    other = tmp_path_factory.mktemp("plain")
    (other / "cats").mkdir()
    (other / "dogs").mkdir()
    with pytest.raises(ValueError, match="at least two class sub-folders with images"):
        load_splits(str(other))
    with pytest.raises(ValueError, match="must be ImageNet WordNet ids"):
        _list_images(str(other), imagenet_labels=True)
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_splits(str(other / "missing"))


def test_cli_evaluate_reports_top1_top5(imagenet_folder, tmp_path):
    model = ECAMobileNetV2(weights=None, input_shape=(224, 224, 3))
    weights = str(tmp_path / "m.weights.h5")
    model.save_weights(weights)
    # Reference: one image at a time through the same transform, the metric computed by hand.
    _, paths, labels = _list_images(str(imagenet_folder), imagenet_labels=True)
    config = EvalConfig()
    images = np.stack([prepare_image(path, config) for path in paths])
    scores = model.predict(preprocess_input(images), verbose=0)
    ranked = np.argsort(-scores, axis=1)
    top1 = 100 * np.mean(ranked[:, 0] == labels)
    top5 = 100 * np.mean([label in row[:5] for label, row in zip(labels, ranked, strict=True)])

    result = subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", "evaluate", "--model", "eca_mobilenet_v2",
         "--weights", weights, "--dataset", str(imagenet_folder), "--batch-size", "4", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 9
    assert report["top1"] == pytest.approx(top1) and report["top5"] == pytest.approx(top5)
