"""The evaluation transform against PIL, and `eca-keras evaluate` scoring models whose accuracy
on a folder is known beforehand: labels are drawn from what an independent pipeline (PIL's
transform, and for ImageNet weights the PyTorch model) predicts, so that the top-1 and top-5 are
neither 0 nor 100% and are reached only with the right transform."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from pil_reference import normalized, pil_pixels

from eca_keras.applications import ECAMobileNetV2
from eca_keras.applications.imagenet_utils import imagenet_classes
from eca_keras.data.classification import _list_images, load_splits
from eca_keras.evaluate import evaluate_model
from eca_keras.preprocessing import EvalConfig, eval_transform

WNIDS = {"n01440764": 0, "n01443537": 1, "n15075141": 999}
# Heights x widths where a floor instead of torchvision's rounding crops one pixel off, square,
# smaller than the crop (upsampled), odd, large.
SIZES = [(375, 500), (500, 375), (256, 343), (256, 256), (200, 300), (1024, 683), (333, 444),
         (97, 129), (224, 224), (600, 601), (40, 48)]  # fmt: skip
CONFIGS = [(224, 0.875), (64, 0.95), (32, 1.0)]


def photo():
    from importlib import resources

    path = resources.files("eca_keras").joinpath("data", "flower.jpg")
    return np.asarray(Image.open(str(path)).convert("RGB"))


def test_eval_transform_is_resize_then_center_crop():
    image = np.random.default_rng(0).integers(0, 256, (256, 320, 3)).astype("uint8")
    # 224 / 0.875 = 256 = the short side already: no resampling, only the center crop.
    out = eval_transform(tf.constant(image), EvalConfig(224, 0.875)).numpy()
    np.testing.assert_array_equal(out, image[16:240, 48:272].astype("float32"))
    small = eval_transform(tf.constant(image[:100, :150]), EvalConfig(64, 0.5)).numpy()
    assert small.shape == (64, 64, 3)  # short side 100 -> 128, long 150 -> 192, crop 64


@pytest.mark.parametrize("interpolation,max_difference", [("bilinear", 2), ("bicubic", 1)])
def test_eval_transform_matches_pil(interpolation, max_difference):
    """Against torchvision's transform on PIL images (written independently in
    pil_reference.py): at most 1-2 levels of 255 apart (ties in the filter weights' rounding),
    over 99% of the values equal. (One 2-D TensorFlow resize was 23 levels off for bicubic,
    and a floored crop offset shifted some images by a pixel.)"""
    rng = np.random.default_rng(0)
    worst, equal, total = 0.0, 0, 0
    for height, width in SIZES:
        noise = rng.integers(0, 256, (height, width, 3)).astype("uint8")
        picture = np.asarray(Image.fromarray(photo()).resize((width, height), Image.LANCZOS))
        for image in (noise, picture):
            for size, crop in CONFIGS:
                config = EvalConfig(size, crop, interpolation)
                ours = eval_transform(tf.constant(image), config).numpy()
                theirs = pil_pixels(image, size, crop, interpolation).astype("float32")
                difference = np.abs(ours - theirs)
                worst = max(worst, float(difference.max()))
                equal += int(np.sum(difference == 0))
                total += difference.size
    assert worst <= max_difference
    assert equal / total >= 0.99


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


# ---- evaluate: a known accuracy ---------------------------------------------------------------


def sample_images(count, seed=0):
    """Photos and noise of assorted sizes: the transform matters for what a network sees."""
    rng = np.random.default_rng(seed)
    base, images = photo(), []
    for index in range(count):
        height, width = int(rng.integers(180, 420)), int(rng.integers(180, 420))
        if index % 2:
            image = rng.integers(0, 256, (height, width, 3))
        else:
            image = np.asarray(Image.fromarray(base).resize((width, height), Image.BICUBIC))
            image = image.astype(int) + rng.integers(-60, 60, image.shape)
        images.append(np.clip(image, 0, 255).astype("uint8"))
    return images


def labels_with_known_accuracy(logits):
    """Labels for images whose (independently computed) logits are ``logits``: cycling through
    the best class (a top-1 hit), the third (a top-5 hit only) and the 500th (a miss), each
    only where its margins to the neighbouring ranks are clear; returns the labels and the
    expected ``(top1, top5)`` in percent."""
    labels, top1, top5 = [], 0, 0
    for index, row in enumerate(logits):
        order = np.argsort(-row)
        ranked = row[order]
        margin = 0.02 * float(ranked[0] - ranked[-1])
        if index % 3 == 0 and ranked[0] - ranked[1] > margin:
            labels.append(order[0])
            top1, top5 = top1 + 1, top5 + 1
        elif index % 3 == 1 and min(ranked[0] - ranked[2], ranked[2] - ranked[5]) > margin:
            labels.append(order[2])  # below the first, above the sixth: a top-5 hit only
            top5 += 1
        else:
            labels.append(order[500])
    count = len(labels)
    return np.asarray(labels), (100 * top1 / count, 100 * top5 / count)


def scored(logits, labels):
    """(top1, top5) in percent of ``logits`` against ``labels``, computed here."""
    ranked = np.argsort(-np.asarray(logits), axis=1)
    top1 = 100 * np.mean(ranked[:, 0] == labels)
    top5 = 100 * np.mean([label in row[:5] for label, row in zip(labels, ranked, strict=True)])
    return top1, top5


def write_wnid_folder(root, images, labels):
    classes = imagenet_classes()
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / classes[int(label)][0]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    return str(root)


def test_cli_evaluate_reports_top1_top5(tmp_path):
    """A registered model with a weights file: the default transform (224, crop 0.875,
    bilinear) through the CLI, against PIL and the Keras model run here."""
    backbone = ECAMobileNetV2(weights=None, include_top=False, pooling="avg")
    images = sample_images(12)
    pixels = np.stack([normalized(pil_pixels(image, 224, 0.875, "bilinear")) for image in images])
    features = backbone.predict(pixels, verbose=0)
    # A head centred on these images' features: a random network's own head ranks one class
    # first for every image; this one's ranking depends on the image.
    kernel = np.random.default_rng(2).normal(0, 1 / np.sqrt(1280), (1280, 1000))
    bias = -(features.mean(axis=0) @ kernel)
    model = ECAMobileNetV2(weights=None)
    model.set_weights([*backbone.get_weights(), kernel.astype("float32"), bias.astype("float32")])
    weights = str(tmp_path / "m.weights.h5")
    model.save_weights(weights)
    logits = features @ kernel + bias
    labels, expected = labels_with_known_accuracy(logits)
    assert 0 < expected[0] < expected[1] < 100
    folder = write_wnid_folder(tmp_path / "val", images, labels)

    result = subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", "evaluate", "--model", "eca_mobilenet_v2",
         "--weights", weights, "--dataset", folder, "--batch-size", "4", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stderr and "\r" not in result.stderr  # no progress bar codes
    report = json.loads(result.stdout)
    assert report["n"] == 12
    assert (report["top1"], report["top5"]) == pytest.approx(expected)
    # The same images cropped another way (bicubic, 0.95) would not score the same: the
    # agreement above depends on the transform.
    other = np.stack([normalized(pil_pixels(image, 224, 0.95, "bicubic")) for image in images])
    assert scored(backbone.predict(other, verbose=0) @ kernel + bias, labels) != expected


@pytest.mark.slow
def test_imagenet_weights_are_evaluated_with_their_own_transform(tmp_path, monkeypatch):
    """``--weights imagenet`` of a timm model (256 px, crop 0.875, bicubic) served from a local
    mirror: evaluate must use that transform. The expected scores come from the PyTorch model
    (the file the mirror serves) on PIL-prepared images; the default transform (224 px,
    bilinear) would score otherwise."""
    from torch_or_skip import import_torch

    torch = import_torch()
    from eca_keras.applications import weights as weight_registry
    from eca_keras.testing import references, torch_reference

    name = "ecaresnet26t"
    entry = weight_registry.weight_source(name)
    assert (entry.eval.input_size, entry.eval.interpolation) == (256, "bicubic")
    reference = torch_reference.randomize_(references.reference_model(name), seed=3)
    images = sample_images(9, seed=4)

    def torch_logits(size, crop, interpolation):
        batch = np.stack([normalized(pil_pixels(im, size, crop, interpolation)) for im in images])
        with torch.no_grad():
            features = reference.forward_head(
                reference.forward_features(torch.from_numpy(batch.transpose(0, 3, 1, 2))),
                pre_logits=True,
            )
            return features.numpy(), reference.get_classifier()(features).numpy()

    features, _ = torch_logits(256, 0.875, "bicubic")
    with torch.no_grad():  # centre the head on these images' features
        head = reference.get_classifier()
        head.bias -= head(torch.from_numpy(features.mean(axis=0, keepdims=True)))[0]
    _, logits = torch_logits(256, 0.875, "bicubic")
    labels, expected = labels_with_known_accuracy(logits)
    assert 0 < expected[0] < expected[1] < 100
    assert scored(torch_logits(224, 0.875, "bilinear")[1], labels) != expected

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    references.save_checkpoint(name, reference, mirror / entry.file_name)
    monkeypatch.setenv(weight_registry.MIRROR_VARIABLE, str(mirror))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    folder = write_wnid_folder(tmp_path / "val", images, labels)
    report = evaluate_model(name, folder, weights="imagenet", batch_size=3)
    assert report["n"] == len(images)
    assert (report["top1"], report["top5"]) == pytest.approx(expected)
