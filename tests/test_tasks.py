"""keras-hub's RetinaNet and DeepLabV3 on ECA backbones: construction from the ECA pyramid,
pretrained and frozen backbones, saving and loading (``.keras``, presets), detections mapped back
to images of any size, mean IoU, and the settings' clear errors. Small inputs (64 px)."""

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")
import keras  # noqa: E402

from eca_keras.applications import get_model  # noqa: E402
from eca_keras.hub import ECABackbone  # noqa: E402
from eca_keras.tasks import detection, models, segmentation, settings  # noqa: E402

SIZE = 64


def pixels(count, height=SIZE, width=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def detector():
    keras.utils.set_random_seed(0)
    return models.build_detector("eca_resnet18", 3, SIZE)


@pytest.fixture(scope="module")
def segmenter():
    keras.utils.set_random_seed(0)
    return models.build_segmenter("eca_resnet18", 4, SIZE)


def test_detector_reads_the_eca_pyramid(detector):
    encoder = detector.backbone.image_encoder
    assert isinstance(encoder, ECABackbone) and encoder.architecture == "eca_resnet18"
    assert any(layer.name.endswith("_eca") for layer in encoder.layers)
    # the FPN's inputs are the encoder's P3..P5 (last blocks of stages 3-5)
    extractor = detector.backbone.get_layer("backbone")
    assert [t.name for t in extractor.outputs] == [
        encoder.get_layer(f"conv{stage}_block2_out").output.name for stage in (3, 4, 5)
    ]
    outputs = detector(detector.preprocessor(pixels(2)))
    anchors = 9 * sum((SIZE // 2**level) ** 2 for level in (3, 4, 5))
    assert outputs["cls_logits"].shape == (2, anchors, 3)
    assert outputs["bbox_regression"].shape == (2, anchors, 4)
    # RetinaNet's prior: anchors start near probability 0.01, not 0.5
    probabilities = np.asarray(keras.ops.sigmoid(outputs["cls_logits"]))
    assert np.median(probabilities) < 0.05


def test_detections_are_mapped_back_to_each_image(detector):
    images = [pixels(1, 40, 100)[0], pixels(1, 64, 64, seed=1)[0], pixels(1, 90, 30, seed=2)[0]]
    found = detection.detect(detector, images, batch_size=2)
    assert len(found) == 3
    for image, result in zip(images, found, strict=True):
        height, width = image.shape[:2]
        boxes = result["boxes"]
        assert boxes.shape[1:] == (4,) and len(boxes) == len(result["scores"])
        assert np.all(boxes >= 0) and np.all(boxes[:, [0, 2]] <= width)
        assert np.all(boxes[:, [1, 3]] <= height)
        assert np.all(np.diff(result["scores"]) <= 0) and np.all(result["scores"] >= 0.05)
        assert set(result["labels"].tolist()) <= {0, 1, 2}


def test_segmenter_reads_the_eca_pyramid(segmenter):
    encoder = segmenter.backbone.image_encoder
    assert isinstance(encoder, ECABackbone)
    assert segmenter.backbone.spatial_pyramid_pooling_key == "P4"
    assert segmenter.backbone.low_level_feature_key == "P2"
    logits = segmenter(segmenter.preprocessor(pixels(2)))
    assert logits.shape == (2, SIZE, SIZE, 4)
    masks = segmentation.segment(segmenter, [pixels(1, 50, 80)[0]])
    assert masks[0].shape == (50, 80) and masks[0].max() < 4


def assert_same_outputs(first, second, images):
    got, expected = (
        keras.tree.map_structure(np.asarray, model(model.preprocessor(images)))
        for model in (first, second)
    )
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), got, expected
    )


def test_detector_preset(detector, tmp_path):
    """A preset loads as keras-hub loads it (``ObjectDetector.from_preset``), in process; the
    training tests load ``best.keras`` files in a new process."""
    detector.save_to_preset(tmp_path / "preset")
    loaded, _ = models.open_task_model(tmp_path / "preset", "detection")
    assert type(loaded) is type(detector)
    assert_same_outputs(loaded, detector, pixels(2, seed=3))


def test_segmenter_preset_and_keras_file(segmenter, tmp_path):
    segmenter.save_to_preset(tmp_path / "preset")
    segmenter.save(tmp_path / "segmenter.keras")
    for reference in (tmp_path / "preset", tmp_path / "segmenter.keras"):
        loaded, _ = models.open_task_model(reference, "segmentation")
        assert type(loaded) is type(segmenter)
        assert_same_outputs(loaded, segmenter, pixels(2, seed=3))
    with pytest.raises(ValueError, match="not a detection model"):
        models.open_task_model(tmp_path / "segmenter.keras", "detection")


def test_pretrained_frozen_backbone(tmp_path):
    """Weights given as a file fill the encoder (layer by layer, by name); a frozen encoder
    does not change in a training step while the head does."""
    source = get_model("eca_resnet18", weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    rng = np.random.default_rng(0)
    source.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in source.weights])
    path = tmp_path / "r18.weights.h5"
    source.save_weights(path)
    segmenter = models.build_segmenter("eca_resnet18", 3, SIZE, weights=str(path),
                                       freeze_backbone=True)  # fmt: skip
    encoder = segmenter.backbone.image_encoder
    for layer in (layer for layer in source.layers if layer.weights):
        for mine, theirs in zip(encoder.get_layer(layer.name).weights, layer.weights, strict=True):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    assert not encoder.trainable
    before = [np.asarray(w).copy() for w in encoder.weights]
    head = segmenter.get_layer("segmentation_output").kernel
    head_before = np.asarray(head).copy()
    segmenter.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[],
    )
    segmenter.preprocessor = None
    masks = rng.integers(0, 3, (2, SIZE, SIZE, 1))
    segmenter.train_on_batch(rng.normal(size=(2, SIZE, SIZE, 3)).astype("float32"), masks)
    for old, new in zip(before, encoder.weights, strict=True):
        np.testing.assert_array_equal(old, np.asarray(new))
    assert not np.array_equal(head_before, np.asarray(head))


def test_mean_iou_metric():
    """Keras' MeanIoU as used here: background counts, padding pixels are not scored."""
    truth = np.asarray([[0, 0, 1, 1], [2, 2, 255, 255]]).reshape(1, 2, 4, 1)
    predicted = np.asarray([[0, 1, 1, 1], [2, 0, 0, 1]])
    logits = np.eye(3)[predicted][None] * 5.0
    metric = segmentation.mean_iou_metric(3)
    metric.update_state(truth, logits)
    # scored pixels only; class 0: 1 hit, 1 missed, 1 false alarm; 1: 2 hits, 1 false alarm;
    # 2: 1 hit, 1 missed
    expected = np.mean([1 / 3, 2 / 3, 1 / 2])
    assert float(metric.result()) == pytest.approx(expected)


@pytest.mark.parametrize(
    "task, override, message",
    [
        ("segmentation", "pooling_level=P6", "pooling_level must be a backbone level"),
        ("detection", "min_level=6 max_level=7", "min_level must be a backbone level"),
        ("detection", "image_size=100", "multiple of 32"),
        ("detection", "freeze_backbone=true", "needs pretrained weights"),
        ("segmentation", "epoch=3", "Unknown setting 'epoch'"),
    ],
)
def test_settings_errors(task, override, message):
    with pytest.raises(settings.SettingsError, match=message):
        settings.resolve(task, overrides=override.split())


def test_unknown_level_in_the_encoder():
    with pytest.raises(ValueError, match="has no pyramid level P6"):
        models.build_segmenter("eca_resnet18", 3, SIZE, pooling_level="P6")
