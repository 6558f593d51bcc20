"""``export()``: one artifact written, verified on held-out images, then put in place.

The artifact is built in a temporary folder beside ``output``, run on held-out images and
compared with the Keras model (:mod:`eca_keras.export.verify`); only an artifact within its
bounds is moved to ``output``, with its labels file and JSON sidecar. A failed export leaves
whatever was at ``output`` untouched.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import numpy as np

from eca_keras.export import artifacts, convert, verify
from eca_keras.export.source import resolve_source

FORMATS = ("saved_model", "tflite")
DEFAULT_CALIBRATION_IMAGES = 500
DEFAULT_VERIFICATION_IMAGES = 200


@dataclasses.dataclass
class ExportResult:
    path: str
    format: str
    quantize: str
    size_bytes: int
    labels_path: str
    metadata_path: str
    verification: dict
    operators: dict | None = None  # TFLite: op name -> count
    report: str = ""


def export(
    output=None,
    *,
    model_dir=None,
    model=None,
    weights="imagenet",
    format="tflite",  # the CLI's --format (shadows the builtin inside only)
    quantize="none",
    input_size=None,
    representative_data=None,
    data_dir=None,
    io_type="uint8",
    batch_size=1,
    calibration_images=DEFAULT_CALIBRATION_IMAGES,
    verification_images=DEFAULT_VERIFICATION_IMAGES,
    log=print,
):
    """Exports a run (``model_dir``), a ``.keras`` file or a registered model (``model``,
    ``weights``) as a SavedModel or a TFLite file, verifies it and returns an
    :class:`ExportResult`.

    ``representative_data`` (a dataset, as ``--dataset`` of training) supplies the calibration
    images (its training split) and the held-out verification images (its validation split);
    a run's own dataset is the default, then the embedded digits (not for int8, whose
    calibration must see the images the model will see). ``io_type`` is the int8 model's input
    and output type; ``batch_size`` the TFLite model's static batch.
    """
    _check_arguments(format, quantize, io_type, batch_size)
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("Exporting needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    source = resolve_source(model_dir, model, weights, input_size)
    output = output or default_output(source.name, format, quantize, model_dir)
    splits = _open_data(source, representative_data, data_dir, quantize, log)
    held_out = _pixels(splits.validation, source.eval_config, verification_images)
    serve = convert.serving_function(source.model, source.outputs_probabilities)
    reference = np.concatenate([serve(batch)["probabilities"] for batch in _batches(held_out)])
    calibration = None
    if quantize == "int8":
        shuffled = splits.train.shuffle(10 * calibration_images, seed=0)
        calibration = _pixels(shuffled, source.eval_config, calibration_images)

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".export-") as work:
        staged = os.path.join(work, os.path.basename(output))
        log(
            f"writing {format}{'' if format == 'saved_model' else f' ({quantize})'} of "
            f"{source.name} at {source.input_size}x{source.input_size}"
        )
        operators = _write(source, format, quantize, calibration, io_type, batch_size, staged, work)
        artifact = artifacts.load_artifact(staged)
        measured = verify.measure(reference, artifact(held_out))
        kind = "saved_model" if format == "saved_model" else quantize
        report = verify.check(measured, kind)
        log(f"verified {report}")
        metadata = _metadata(source, format, quantize, artifact, operators, measured, kind)
        labels, sidecar = _put_in_place(staged, output, source.class_names, metadata)
    return ExportResult(
        output, format, quantize, _size(output), labels, sidecar, measured, operators, report
    )


def default_output(name, format, quantize, model_dir=None):
    """``<run>/export/<name>[_<quantize>].tflite`` (or ``_saved_model``), or in ``./export``."""
    suffix = "_saved_model" if format == "saved_model" else ".tflite"
    stem = name if quantize == "none" else f"{name}_{quantize}"
    return os.path.join(model_dir or ".", "export", stem + suffix)


def _check_arguments(format, quantize, io_type, batch_size):
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; received {format!r}")
    if quantize not in convert.QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {convert.QUANTIZATIONS}; received {quantize!r}")
    if format == "saved_model" and quantize != "none":
        raise ValueError("Quantization applies to TFLite; a SavedModel is exported in float32")
    if io_type not in convert.INT8_IO_TYPES:
        raise ValueError(f"io_type must be one of {convert.INT8_IO_TYPES}; received {io_type!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}")


def _open_data(source, representative_data, data_dir, quantize, log):
    from eca_keras.training import data

    dataset = representative_data or source.dataset
    if dataset is None and quantize == "int8":
        raise ValueError(
            f"int8 quantization calibrates on images like those {source.name} will see: pass "
            "--representative-data (a dataset: folder, tfds:<name>, TFRecord glob)"
        )
    if dataset is None:
        log("note: verifying on the embedded digits (pass --representative-data for your images)")
        dataset = "digits"
    if representative_data is None and data_dir is None:
        data_dir = source.data_dir
    return data.load_splits(dataset, data_dir)


def _pixels(images, eval_config, count):
    """The first ``count`` images of a ``(image, label)`` dataset as uint8 model inputs."""
    from eca_keras.training import data

    if count < 1:
        raise ValueError(f"The number of images must be positive; received {count}")
    batches = images.take(count).map(lambda image, _: data.eval_pixels(image, eval_config))
    pixels = [batch.numpy() for batch in batches.batch(64)]
    if not pixels:
        raise ValueError("The dataset has no images to calibrate or verify the export with")
    return np.concatenate(pixels)


def _batches(images, size=64):
    for start in range(0, len(images), size):
        yield images[start : start + size]


def _write(source, format, quantize, calibration, io_type, batch_size, staged, work):
    model, probabilities, size = source.model, source.outputs_probabilities, source.input_size
    if format == "saved_model":
        convert.write_saved_model(model, probabilities, staged, size)
        return None
    # Full-integer calibration feeds float pixels; the converter puts the (u)int8 input in front.
    dtype = "float32" if quantize == "int8" else "uint8"
    intermediate = os.path.join(work, "serving")
    convert.write_saved_model(model, probabilities, intermediate, size, dtype, batch_size)
    flatbuffer = convert.convert_to_tflite(intermediate, quantize, calibration, io_type)
    with open(staged, "wb") as handle:
        handle.write(flatbuffer)
    return convert.operator_counts(flatbuffer)


def _metadata(source, format, quantize, artifact, operators, measured, kind):
    from eca_keras import __version__

    config = source.eval_config
    quantization = getattr(artifact, "input_quantization", (0.0, 0))
    return {
        "model": source.name,
        "format": format,
        "quantize": quantize,
        "classes": len(source.class_names),
        "input": {
            "name": "images",
            "dtype": np.dtype(artifact.input_dtype).name,
            "size": config.input_size,
            "quantization": list(quantization) if quantization[0] else None,
            "pixels": "RGB in [0, 255], resized and center-cropped as eval describes",
        },
        "output": {"name": "probabilities"},
        "eval": {
            "input_size": config.input_size,
            "crop_pct": config.crop_pct,
            "interpolation": config.interpolation,
        },
        "operators": operators,
        "verification": {**measured, "bound": dataclasses.asdict(verify.BOUNDS[kind])},
        "eca_keras_version": __version__,
    }


def _put_in_place(staged, output, class_names, metadata):
    """Moves the verified artifact to ``output`` and writes its labels file and sidecar;
    returns their paths."""
    labels, sidecar = artifacts.labels_path(output), artifacts.metadata_path(output)
    metadata["labels"] = os.path.basename(labels)
    if os.path.isdir(staged):  # a SavedModel carries its labels and sidecar inside
        _write_text(artifacts.labels_path(staged), "".join(f"{n}\n" for n in class_names))
        _write_text(artifacts.metadata_path(staged), json.dumps(metadata, indent=2) + "\n")
        if os.path.isdir(output):
            shutil.rmtree(output)
        os.replace(staged, output)
    else:
        os.replace(staged, output)
        _write_text(labels, "".join(f"{name}\n" for name in class_names))
        _write_text(sidecar, json.dumps(metadata, indent=2) + "\n")
    return labels, sidecar


def _write_text(path, text):
    partial = f"{path}.partial"
    with open(partial, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )
