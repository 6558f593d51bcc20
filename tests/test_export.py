"""Export: SavedModel and TFLite in every quantization, each verified by the export itself and
again here, independently (the Keras model fed by ``preprocess_input`` on pixels PIL prepared,
bounds typed from the README; TFLite also by MediaPipe's ImageClassifier, through the file's
metadata); builtin ops only; int8 I/O; the README's export -> evaluate example at the default
output path; the verification bounds, one wrong model rejected; outputs checked before any work
and never replaced unless written by an export. ONNX and the other deployment checks:
tests/test_deploy.py."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image
from pil_reference import pil_pixels

from eca_keras import artifacts
from eca_keras import export as eca_export
from eca_keras.applications import ECAResNet18, preprocess_input
from eca_keras.data import classification as data
from eca_keras.evaluate import evaluate_model
from eca_keras.export import exporter, saved_model, tflite, verify

# Every builtin op these models may use (ECA: MEAN, RESHAPE, CONV_2D, LOGISTIC, MUL).
MOBILE_OPS = {
    "ADD", "AVERAGE_POOL_2D", "CAST", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
    "FULLY_CONNECTED", "LOGISTIC", "MAX_POOL_2D", "MEAN", "MUL", "PAD", "QUANTIZE", "RESHAPE",
    "SOFTMAX", "SUB",
}  # fmt: skip
TFLITE_FORMATS = ("none", "float16", "dynamic", "int8")
# What the README promises each artifact achieves against the Keras model, typed here (not read
# from eca_keras.export.verify): largest probability difference over the largest probability,
# or the share of images with the same best class.
MAX_RELATIVE_DIFFERENCE = {"saved_model": 1e-4, "none": 1e-4, "float16": 1e-2}
MIN_TOP1_AGREEMENT = {"dynamic": 0.98, "int8": 0.98}
# Tests of the session's digits_run share one pytest-xdist worker, so the run is trained once.
ON_DIGITS_RUN = pytest.mark.xdist_group("digits_run")


def raw_images(split):
    """uint8 images and integer labels of a ``(image, label)`` dataset, as stored."""
    pairs = [(image.numpy(), int(label)) for image, label in split]
    return np.stack([image for image, _ in pairs]), np.asarray([label for _, label in pairs])


def digits_validation():
    """The digits' validation images prepared by PIL for a 32 px model cropping 1.0 (which is
    each 32x32 image unchanged), and their labels."""
    images, labels = raw_images(data.load_splits("digits").validation)
    return np.stack([pil_pixels(image, 32, 1.0) for image in images]), labels


def keras_probabilities(model, pixels):
    """The Keras model on ``preprocess_input`` of ``pixels``, as probabilities."""
    outputs = np.asarray(model.predict(preprocess_input(pixels.astype("float32")), verbose=0))
    if getattr(model.layers[-1].activation, "__name__", "") != "softmax":
        outputs = tf.nn.softmax(outputs).numpy()
    return outputs


def assert_computes_like_keras(outputs, reference, kind):
    """``outputs`` of an artifact of ``kind`` within the README's bound of the Keras model's."""
    outputs, reference = np.asarray(outputs, "float64"), np.asarray(reference, "float64")
    assert outputs.shape == reference.shape
    if kind in MAX_RELATIVE_DIFFERENCE:
        difference = np.max(np.abs(outputs - reference)) / np.max(np.abs(reference))
        assert difference <= MAX_RELATIVE_DIFFERENCE[kind], difference
    else:
        agreement = np.mean(outputs.argmax(axis=1) == reference.argmax(axis=1))
        assert agreement >= MIN_TOP1_AGREEMENT[kind], agreement


def check_tflite_file(path, quantize, io_type="uint8", batch=1):
    """The file's own properties: builtin ops only, a static batch, the input and output types."""
    with open(path, "rb") as handle:
        operators = eca_export.operator_counts(handle.read())
    assert set(operators) <= MOBILE_OPS, operators
    assert {"MEAN", "CONV_2D", "LOGISTIC", "MUL"} <= set(operators)  # ECA is there, as builtins
    artifact = artifacts.load_artifact(path)
    assert artifact.batch_size == batch
    details = artifact.interpreter.get_input_details()[0]
    assert list(details["shape"]) == [batch, artifact.input_size, artifact.input_size, 3]
    assert list(details["shape_signature"]) == list(details["shape"])  # static
    if quantize == "int8":
        zero_point = 0 if io_type == "uint8" else -128
        assert artifact.input_dtype == np.dtype(io_type) == artifact.output_dtype
        assert artifact.input_quantization == (1.0, zero_point)  # raw pixels go in unchanged
        assert artifact.output_quantization == (1 / 256, zero_point)
    else:
        assert artifact.input_dtype == np.uint8 and artifact.input_quantization[0] == 0
        assert artifact.output_dtype == np.float32
    return artifact


# What the TFLite GPU delegate cannot run in each file (eca_keras.export.gpu): the CAST of the
# uint8 input to float32, and dynamic range's int8-weight FULLY_CONNECTED (version 12).
GPU_DELEGATE_GAPS = {
    "none": {"CAST"},
    "float16": {"CAST"},
    "dynamic": {"CAST", "FULLY_CONNECTED"},
    "int8": set(),
}


def mediapipe_classify(path, pixels, classes):
    """MediaPipe Tasks' ImageClassifier on uint8 images at the model's size: every category's
    score ``(N, classes)`` and the names it gave them."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    scores = np.full((len(pixels), classes), np.nan)
    names = [[None] * classes for _ in pixels]
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for i, image in enumerate(pixels):
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
            for category in classifier.classify(frame).classifications[0].categories:
                scores[i, category.index] = category.score
                names[i][category.index] = category.category_name
    return scores, names


def mediapipe_metadata(path):
    """The metadata as MediaPipe's MetadataDisplayer shows it: name, labels, normalisation, the
    packed sidecar."""
    from eca_keras.export import mediapipe_compat

    mediapipe_compat.install()  # mediapipe 1.2.x lacks a module its metadata tools import
    from mediapipe.tasks.python.metadata.metadata import MetadataDisplayer

    displayer = MetadataDisplayer.with_model_file(path)
    shown = json.loads(displayer.get_metadata_json())
    image = shown["subgraph_metadata"][0]["input_tensor_metadata"][0]
    return {
        "name": shown["name"],
        "author": shown["author"],
        "license": shown["license"],
        "labels": displayer.get_associated_file_buffer("labels.txt").decode().split("\n"),
        "normalization": image["process_units"][0]["options"],
        "eca_keras.json": displayer.get_associated_file_buffer("eca_keras.json"),
    }


def check_sidecars(path, class_names, quantize):
    with open(artifacts.labels_path(path)) as handle:
        assert handle.read().splitlines() == [str(name) for name in class_names]
    metadata = artifacts.read_metadata(path)
    assert metadata["quantize"] == quantize and metadata["classes"] == len(class_names)
    return metadata


def run_config(run):
    with open(os.path.join(run, "config.yaml")) as handle:
        return yaml.safe_load(handle)


# ---- an ECA-MobileNetV2 run made by `eca-keras train` ----------------------------------------


@ON_DIGITS_RUN
@pytest.mark.slow
@pytest.mark.parametrize("quantize,batch", [("none", 1), ("float16", 1), ("dynamic", 4)])
def test_tflite_from_a_training_run(digits_run, quantize, batch, tmp_path):
    output = str(tmp_path / f"digits_{quantize}.tflite")
    card = {"author": "eca_keras tests", "license": "CC0-1.0"}
    result = eca_export.export(
        output, model_dir=digits_run, quantize=quantize, batch_size=batch, metadata=card
    )
    assert result.path == output and os.path.getsize(output) == result.size_bytes
    artifact = check_tflite_file(output, quantize, batch=batch)
    metadata = check_sidecars(output, run_config(digits_run)["class_names"], quantize)
    assert metadata["eval"] == {
        "input_size": 32,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }

    # Independently of the export's own check: the file against the run's best.keras on all
    # 359 held-out images (not the export's 200), prepared by PIL.
    model = keras.saving.load_model(os.path.join(digits_run, "best.keras"))
    pixels, labels = digits_validation()
    reference = keras_probabilities(model, pixels)
    assert_computes_like_keras(artifact(pixels), reference, quantize)

    # As a phone app runs it: MediaPipe's ImageClassifier takes the labels and the normalisation
    # from the file's metadata; its scores and category names agree with Keras as above.
    class_names = [str(name) for name in run_config(digits_run)["class_names"]]
    if batch == 1:
        scores, names = mediapipe_classify(output, pixels, len(class_names))
        verify.check(verify.measure(reference, scores), quantize)
        assert names == [class_names] * len(pixels)  # every category, named as labelled
        assert result.client_check["images"] == 200 and result.client_check["vs_keras"]
    else:  # MediaPipe runs batch-1 files only: the export says so instead of failing
        assert "batch-1 files only" in result.client_check["skipped"]
    shown = mediapipe_metadata(output)
    assert shown["name"] == "eca_mobilenet_v2 (digits)" and shown["labels"] == class_names
    assert (shown["author"], shown["license"]) == (card["author"], card["license"])
    assert shown["normalization"] == {"mean": [0.0], "std": [1.0]}  # raw uint8 pixels go in
    assert json.loads(shown["eca_keras.json"])["eval"] == metadata["eval"]
    # The GPU delegate's gaps are outside ECA: the uint8 input's cast, dynamic range's head.
    gaps = {entry["op"] for entry in metadata["gpu_delegate"]["incompatible"]}
    assert gaps == GPU_DELEGATE_GAPS[quantize] and result.gpu_delegate == metadata["gpu_delegate"]

    # evaluate scores the artifact as the Keras model: equal for float, within a point else.
    scored = evaluate_model(output, "digits")
    keras_top1 = 100 * np.mean(reference.argmax(1) == labels)
    assert scored["n"] == len(labels) == 359
    if quantize in ("none", "float16"):
        assert scored["top1"] == pytest.approx(keras_top1, abs=1e-9)
    else:
        assert abs(scored["top1"] - keras_top1) <= 1.0

    if quantize == "float16":  # without its sidecar the transform is unknown: refused
        alone = tmp_path / "alone"
        alone.mkdir()
        shutil.copy(output, alone / "digits.tflite")
        with pytest.raises(ValueError, match="has no sidecar .* keep the files"):
            evaluate_model(str(alone / "digits.tflite"), "digits")


@ON_DIGITS_RUN
@pytest.mark.slow
def test_int8_at_the_default_path_then_evaluate_as_the_readme_shows(digits_run, tmp_path):
    """README: ``eca-keras export --model-dir RUN --format tflite --quantize int8``, then
    ``eca-keras evaluate --model RUN/export/eca_mobilenet_v2_int8.tflite --dataset digits``."""
    from test_training import cli

    run = tmp_path / "run"  # a copy: the shared run stays as trained
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("backup", "logs", "export"))
    exported = cli("export", "--model-dir", run, "--format", "tflite", "--quantize", "int8")
    assert exported.returncode == 0, exported.stderr[-3000:]
    path = run / "export" / "eca_mobilenet_v2_int8.tflite"
    assert f"wrote {path}" in exported.stdout and "verified int8:" in exported.stdout
    artifact = check_tflite_file(str(path), "int8")
    check_sidecars(str(path), run_config(digits_run)["class_names"], "int8")

    model = keras.saving.load_model(os.path.join(digits_run, "best.keras"))
    pixels, labels = digits_validation()
    reference = keras_probabilities(model, pixels)
    assert_computes_like_keras(artifact(pixels), reference, "int8")

    evaluated = cli("evaluate", "--model", path, "--dataset", "digits", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads(evaluated.stdout)
    assert report["n"] == 359
    assert abs(report["top1"] - 100 * np.mean(reference.argmax(1) == labels)) <= 1.0
    again = cli("export", "--model-dir", run, "--format", "tflite", "--quantize", "int8")
    assert again.returncode == 1 and again.stderr.strip().endswith(
        f"{path} exists; pass --overwrite to replace it"
    )


@ON_DIGITS_RUN
@pytest.mark.slow
def test_saved_model_from_a_training_run_through_the_cli(digits_run, tmp_path):
    from test_training import cli

    output = str(tmp_path / "digits_saved_model")
    result = cli("export", "--model-dir", digits_run, "--format", "saved_model", "--output", output)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "verified saved_model: max relative difference" in result.stdout
    config = run_config(digits_run)
    check_sidecars(output, config["class_names"], "none")
    exporter.check_output(output, "saved_model", overwrite=True)  # replaceable with --overwrite

    loaded = tf.saved_model.load(output)  # plain TensorFlow, no Keras
    serve = loaded.signatures["serving_default"]
    spec = serve.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 32, 32, 3]
    pixels, labels = digits_validation()
    probabilities = serve(images=tf.constant(pixels))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    model = keras.saving.load_model(os.path.join(digits_run, "best.keras"))
    reference = keras_probabilities(model, pixels)
    assert_computes_like_keras(probabilities, reference, "saved_model")

    picture = str(tmp_path / "digit.png")
    Image.fromarray(pixels[0]).save(picture)  # a 32x32 image: the crop is itself
    predicted = cli("predict", "--model", output, picture)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    first = predicted.stdout.splitlines()[1].split()  # "1. <class name> <class index> <score>"
    best = int(reference[0].argmax())
    assert first[1:3] == [str(config["class_names"][best]), str(best)]
    assert float(first[3]) == pytest.approx(reference[0, best], abs=1e-4)

    evaluated = cli("evaluate", "--model", output, "--dataset", "digits", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    keras_top1 = 100 * np.mean(reference.argmax(1) == labels)
    assert (
        json.loads(evaluated.stdout)
        == {
            "top1": pytest.approx(keras_top1),  # the same count; 100 * mean vs 100 * count / n
            "top5": pytest.approx(
                100 * np.mean(np.any(np.argsort(-reference)[:, :5] == labels[:, None], 1))
            ),
            "n": 359,
        }
    )


@ON_DIGITS_RUN
@pytest.mark.slow
def test_int8_with_int8_io(digits_run, tmp_path):
    output = str(tmp_path / "digits_int8_io.tflite")
    eca_export.export(output, model_dir=digits_run, quantize="int8", io_type="int8")
    artifact = check_tflite_file(output, "int8", io_type="int8")
    pixels = digits_validation()[0][:1]
    # Feeding the file by hand: int8 input is pixel - 128, the output is probability * 256 - 128.
    raw = artifact.invoke((pixels.astype("int16") - 128).astype("int8"))
    np.testing.assert_allclose((raw.astype("float32") + 128) / 256, artifact(pixels))


# ---- an ECA-ResNet from a .keras file -------------------------------------------------------


FOLDER_CLASSES = (0, 1, 2)


@pytest.fixture(scope="module")
def three_digits_folder(tmp_path_factory):
    """A user's image folder (train/ and val/ of PNG files): the digits 0, 1 and 2."""
    splits = data.load_splits("digits")
    folder = tmp_path_factory.mktemp("three_digits")
    for split, name in ((splits.train, "train"), (splits.validation, "val")):
        for index, (pixels, label) in enumerate(zip(*raw_images(split), strict=True)):
            if label in FOLDER_CLASSES:
                os.makedirs(folder / name / f"digit{label}", exist_ok=True)
                Image.fromarray(pixels).save(folder / name / f"digit{label}" / f"{index}.png")
    return str(folder)


def folder_images(folder):
    """The PNG files of a class folder read by PIL (32x32: PIL's preparation leaves them so)."""
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)
    return np.stack([pil_pixels(np.asarray(Image.open(path)), 32, 1.0) for path in paths])


@pytest.fixture(scope="module")
def resnet_file(three_digits_folder, tmp_path_factory):
    """An ECA-ResNet18 classifier of the folder's digits at 32x32, as a .keras file outside any
    run. Training a ResNet takes minutes on this CPU, so the backbone is random with its
    BatchNorm statistics measured on the images, and the head is a ridge regression on its
    features: a real classifier (100% on the held-out images), cheaply. The seed fixes the
    network (float16 then agrees within 8e-4; other seeds' random backbones give up to 8e-3)."""
    keras.utils.set_random_seed(0)
    splits = data.load_splits(three_digits_folder)
    backbone = ECAResNet18(weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3))
    pixels, labels = raw_images(splits.train)
    images = preprocess_input(pixels.astype("float32"))
    shuffled = images[np.random.default_rng(0).permutation(len(images))]
    for _ in range(3):  # BatchNorm moving statistics (momentum 0.9) from the images
        for start in range(0, len(shuffled), 64):
            backbone(shuffled[start : start + 64], training=True)
    features = backbone.predict(images, verbose=0)
    mean = features.mean(axis=0)
    centered = features - mean
    targets = np.eye(len(FOLDER_CLASSES))[labels] * 20.0 - 10.0  # confident logits
    gram = centered.T @ centered + 0.1 * len(images) * np.eye(features.shape[1])
    weights = np.linalg.solve(gram, centered.T @ targets)  # ridge regression: small weights
    head = keras.layers.Dense(len(FOLDER_CLASSES), name="predictions")
    model = keras.Model(backbone.input, head(backbone.output))
    head.set_weights([weights, -mean @ weights])
    held_out, truth = raw_images(splits.validation)
    predicted = model.predict(preprocess_input(held_out.astype("float32")), verbose=0)
    assert np.mean(predicted.argmax(axis=1) == truth) >= 0.97
    path = str(tmp_path_factory.mktemp("resnet") / "eca_resnet18_digits.keras")
    model.save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("quantize", TFLITE_FORMATS)
def test_eca_resnet_tflite_from_a_keras_file(resnet_file, three_digits_folder, quantize, tmp_path):
    output = str(tmp_path / f"resnet_{quantize}.tflite")
    result = eca_export.export(
        output, model=resnet_file, quantize=quantize, representative_data=three_digits_folder
    )
    assert result.verification["images"] == 122  # the folder's whole val/
    artifact = check_tflite_file(output, quantize)
    check_sidecars(output, ["0", "1", "2"], quantize)  # a bare .keras file: class indices
    assert result.operators["MAX_POOL_2D"] == 1 and result.operators["ADD"] >= 8  # the ResNet
    # Independently of the export's self-check: the PNG files read by PIL, the .keras model.
    pixels = folder_images(os.path.join(three_digits_folder, "val"))
    reference = keras_probabilities(keras.saving.load_model(resnet_file), pixels)
    assert_computes_like_keras(artifact(pixels), reference, quantize)


@pytest.mark.slow
def test_eca_resnet_saved_model_at_another_input_size(resnet_file, tmp_path):
    output = str(tmp_path / "resnet_saved_model")
    result = eca_export.export(output, model=resnet_file, format="saved_model", input_size=48)
    assert result.verification["max_relative_difference"] <= 1e-4
    assert result.verification["images"] == 200  # no data named: the embedded digits
    artifact = artifacts.load_artifact(output)
    assert artifact.input_size == 48 and artifact.num_classes == 3
    # The reference: the same weights in an ECA-ResNet18 built at 48x48 from scratch.
    backbone = ECAResNet18(weights=None, include_top=False, pooling="avg", input_shape=(48, 48, 3))
    reference = keras.Model(backbone.input, keras.layers.Dense(3)(backbone.output))
    reference.set_weights(keras.saving.load_model(resnet_file).get_weights())
    pixels = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3), dtype="uint8")
    np.testing.assert_allclose(
        artifact(pixels), keras_probabilities(reference, pixels), rtol=1e-4, atol=1e-6
    )


# ---- the checks themselves -------------------------------------------------------------------


def test_verification_bounds():
    reference = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert verify.measure(reference, reference) == {
        "max_relative_difference": 0.0, "top1_agreement": 1.0, "images": 2}  # fmt: skip

    def shifted(by):
        return reference + [[by, 0, 0], [0, 0, 0]]

    verify.check(verify.measure(reference, shifted(0.5e-4)), "none")  # 7.1e-5 relative
    with pytest.raises(verify.VerificationError, match="none: max relative difference 2.86e-04"):
        verify.check(verify.measure(reference, shifted(2e-4)), "none")
    verify.check(verify.measure(reference, shifted(0.006)), "float16")
    with pytest.raises(verify.VerificationError, match="float16"):
        verify.check(verify.measure(reference, shifted(0.008)), "float16")
    with pytest.raises(verify.VerificationError, match="float16"):
        verify.check(verify.measure(reference, np.full_like(reference, np.nan)), "float16")

    many = np.tile(reference, (50, 1))  # 100 images

    def with_best_class_changed(count):
        outputs = many.copy()
        outputs[:count] = outputs[:count, ::-1]  # reversed rows: another best class
        return outputs

    report = verify.check(verify.measure(many, with_best_class_changed(2)), "int8")
    assert "top-1 agreement 98.00% (bound 98%) on 100 held-out images" in report
    for kind in ("int8", "dynamic"):
        with pytest.raises(verify.VerificationError, match="97.00%"):
            verify.check(verify.measure(many, with_best_class_changed(3)), kind)
    with pytest.raises(verify.VerificationError, match="shape"):
        verify.measure(many, many[:, :2])


def test_a_wrong_model_is_rejected_and_nothing_is_written(tmp_path, monkeypatch):
    """The artifact is built from a model with other weights than the one exported: the
    export must fail its verification and leave the output path as it was."""
    from eca_keras.applications import ECAMobileNetV2

    right = ECAMobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    wrong = ECAMobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    path = str(tmp_path / "right.keras")
    right.save(path)
    write = exporter._write

    def write_the_wrong_model(network, *args):
        return write(wrong, *args)

    monkeypatch.setattr(exporter, "_write", write_the_wrong_model)
    output = tmp_path / "out" / "model.tflite"
    with pytest.raises(verify.VerificationError, match="verification failed: none"):
        eca_export.export(str(output), model=path, verification_images=50)
    assert os.listdir(tmp_path / "out") == []


def test_non_builtin_ops_are_refused(tmp_path):
    inputs = keras.Input((4, 4, 3))
    determinant = keras.layers.Lambda(lambda x: tf.linalg.det(x[..., 0])[:, None])(inputs)
    model = keras.Model(inputs, determinant)
    saved = str(tmp_path / "saved")
    saved_model.write_saved_model(model, True, saved, 4)
    with pytest.raises(eca_export.ExportError, match=r"MatrixDeterminant.*Flex delegate"):
        tflite.convert_to_tflite(saved)

    # A flatbuffer that does carry a Flex op (converted with SELECT_TF_OPS allowed) is refused
    # by the check that runs on every written file.
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]  # fmt: skip
    flex = converter.convert()
    assert "CUSTOM:FlexMatrixDeterminant" in eca_export.operator_counts(flex)
    with pytest.raises(eca_export.ExportError, match="FlexMatrixDeterminant"):
        eca_export.check_builtin_ops(flex)


RANDOM = {"model": "eca_mobilenet_v2", "weights": None}


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({**RANDOM, "format": "coreml"}, ValueError, "format must be one of"),
        ({**RANDOM, "format": "saved_model", "quantize": "int8"}, ValueError, "applies to TFLite"),
        ({**RANDOM, "format": "onnx", "quantize": "int8"}, ValueError, "applies to TFLite"),
        (
            {**RANDOM, "metadata": {"owner": "me"}},
            ValueError,
            r"Unknown metadata fields \['owner'\]",
        ),
        ({**RANDOM, "quantize": "int4"}, ValueError, "quantize must be one of"),
        ({**RANDOM, "io_type": "float32"}, ValueError, "io_type must be one of"),
        ({**RANDOM, "batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({**RANDOM, "input_size": 7}, ValueError, "input_size must be an integer of at least 32"),
        ({**RANDOM, "verification_images": 10}, ValueError, "at least 50 held-out images"),
        ({**RANDOM, "quantize": "int8"}, ValueError, "pass --representative-data"),
        ({**RANDOM, "model_dir": "runs/x"}, ValueError, "exactly one of --model-dir"),
        ({"model": "eca_resnet9000"}, ValueError, "Unknown model 'eca_resnet9000'"),
        ({"model": "missing.keras"}, FileNotFoundError, "No such model file"),
        ({"model_dir": "no/such/run"}, FileNotFoundError, "No such run directory"),
    ],
    ids=lambda value: value if isinstance(value, str) and " " not in value else None,
)
def test_export_errors_are_clear(kwargs, error, message, tmp_path):
    output = tmp_path / "out.tflite"
    with pytest.raises(error, match=message):
        eca_export.export(str(output), **kwargs)
    assert not output.exists()


def test_too_few_held_out_images_are_refused(tmp_path):
    folder = tmp_path / "photos"
    for split, count in (("train", 4), ("val", 3)):
        for name in ("cat", "dog"):
            (folder / split / name).mkdir(parents=True)
            for index in range(count):
                Image.fromarray(np.full((40, 40, 3), index, "uint8")).save(
                    folder / split / name / f"{index}.png"
                )
    output = tmp_path / "out.tflite"
    with pytest.raises(ValueError, match="Only 6 held-out images to verify the export on; it "):
        eca_export.export(str(output), **RANDOM, representative_data=str(folder))
    assert not output.exists()


def fake_saved_model(folder, marker):
    """A folder laid out as an export's SavedModel (its contents are not read here)."""
    (folder / "variables").mkdir(parents=True)
    for name in ("saved_model.pb", "fingerprint.pb", "labels.txt", "eca_keras.json"):
        (folder / name).write_text(marker)
    return folder


def test_outputs_are_checked_before_any_work(tmp_path):
    check = exporter.check_output
    check(tmp_path / "new.tflite", "tflite")  # nothing there: fine
    (tmp_path / "old.tflite").write_bytes(b"1")
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        check(tmp_path / "old.tflite", "tflite")
    check(tmp_path / "old.tflite", "tflite", overwrite=True)
    (tmp_path / "d.tflite").mkdir()
    with pytest.raises(ValueError, match="is a folder; give a .tflite file path"):
        check(tmp_path / "d.tflite", "tflite", overwrite=True)
    (tmp_path / "empty").mkdir()
    check(tmp_path / "empty", "saved_model")
    earlier = fake_saved_model(tmp_path / "earlier", "old")
    with pytest.raises(ValueError, match="is not empty; pass --overwrite"):
        check(earlier, "saved_model")
    check(earlier, "saved_model", overwrite=True)
    (earlier / "notes.txt").write_text("mine")  # a file the export did not write
    with pytest.raises(ValueError, match="holds files eca-keras export did not write: notes.txt"):
        check(earlier, "saved_model", overwrite=True)
    with pytest.raises(ValueError, match="not a SavedModel written by eca-keras export"):
        check(tmp_path, "saved_model", overwrite=True)


def test_an_earlier_export_is_replaced_whole(tmp_path):
    output = fake_saved_model(tmp_path / "model", "old")
    work = tmp_path / ".export-work"
    staged = fake_saved_model(work / "model", "new")
    labels, sidecar = exporter._put_in_place(
        str(staged), str(output), ["a", "b"], {"format": "saved_model"}, str(work)
    )
    assert (output / "saved_model.pb").read_text() == "new"
    assert open(labels).read() == "a\nb\n" and json.load(open(sidecar))["labels"] == "labels.txt"
    assert sorted(os.listdir(tmp_path)) == [".export-work", "model"]
    assert os.listdir(work) == ["replaced"]  # the old export, deleted with the work folder


def test_a_run_directory_without_a_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither best.keras nor last.keras"):
        eca_export.export(str(tmp_path / "out.tflite"), model_dir=str(tmp_path))


def test_mixed_precision_models_are_exported_in_float32():
    from eca_keras.models import as_float32

    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    mixed = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(x))
    keras.config.set_dtype_policy("float32")
    rebuilt = as_float32(mixed, 8)
    assert rebuilt is not mixed and rebuilt.layers[1].dtype_policy.name == "float32"
    assert mixed.layers[1].dtype_policy.name == "mixed_float16"
    images = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(rebuilt(images), mixed(images), rtol=1e-2, atol=1e-2)
    assert as_float32(rebuilt, 8) is rebuilt  # nothing to change: the same model
    larger = as_float32(rebuilt, 16)
    assert larger.input_shape == (None, 16, 16, 3)
    for after, before in zip(larger.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(after, before)
