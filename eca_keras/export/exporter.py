"""``export()``: one artifact written, verified on held-out images, then put in place.

The output path is checked before any work: an existing file or non-empty folder is refused
unless ``overwrite``, and even then only an earlier export of this package is replaced, never a
folder it did not write. The artifact is built in a temporary folder beside ``output``, run on
held-out images and compared with the Keras model (:mod:`eca_keras.export.verify`); only an
artifact within its bounds is moved to ``output``, with its labels file and JSON sidecar. A failed
export leaves whatever was at ``output`` untouched.

A ``.tflite`` also gets metadata (:mod:`~eca_keras.export.metadata`), is run by MediaPipe's
ImageClassifier (:mod:`~eca_keras.export.mediapipe_check`) and is read against the GPU
delegate's rules (:mod:`~eca_keras.export.gpu`); an ``.onnx`` (:mod:`~eca_keras.export.onnx_export`)
is verified in ONNX Runtime, also at batch 1. MediaPipe and the ONNX tools come with the extra
``eca-keras[deploy]``: without MediaPipe a ``.tflite`` is still written, without metadata, and
the export says that the client check was skipped.
"""

import dataclasses
import json
import os
import tempfile

import numpy as np

from eca_keras import artifacts, extras, models, runs
from eca_keras.export import gpu, saved_model, tflite, verify
from eca_keras.files import write_atomically
from eca_keras.preprocessing import eval_pixels

FORMATS = ("saved_model", "tflite", "onnx")
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}  # the file formats; a SavedModel is a folder
DEFAULT_CALIBRATION_IMAGES = 500
DEFAULT_VERIFICATION_IMAGES = 200
MIN_VERIFICATION_IMAGES = 50  # fewer cannot show 98% top-1 agreement with any confidence
MIN_INPUT_SIZE = 32
# What an export's SavedModel folder holds (Keras' ExportArchive, then the labels and sidecar).
SAVED_MODEL_ENTRIES = {
    "saved_model.pb",
    "fingerprint.pb",
    "variables",
    "assets",
    artifacts.LABELS_FILE,
    artifacts.METADATA_FILE,
}
AUTHOR = "eca_keras"


@dataclasses.dataclass
class ExportResult:
    path: str
    format: str
    quantize: str
    size_bytes: int
    labels_path: str
    metadata_path: str
    verification: dict
    operators: dict | None = None  # TFLite and ONNX: op name -> count
    report: str = ""
    gpu_delegate: dict | None = None  # TFLite: gpu.gpu_report
    client_check: dict | None = None  # TFLite: MediaPipe's figures, or {"skipped": why}


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
    overwrite=False,
    metadata=None,
    log=print,
):
    """Exports a run (``model_dir``), a ``.keras`` file or a registered model (``model``,
    ``weights``) as a SavedModel, a TFLite or an ONNX file, verifies it and returns an
    :class:`ExportResult`.

    ``representative_data`` (a dataset, as ``--dataset`` of training) supplies the calibration
    images (its training split) and the held-out verification images (its validation split);
    a run's own dataset is the default, then the embedded digits (not for int8, whose
    calibration must see the images the model will see). ``io_type`` is the int8 model's input
    and output type; ``batch_size`` the TFLite model's static batch. ``overwrite`` replaces an
    earlier export at ``output``. ``metadata`` overrides fields of the TFLite metadata
    (``name``, ``description``, ``version``, ``author``, ``license``).
    """
    _check_arguments(format, quantize, io_type, batch_size, input_size, verification_images)
    _check_card(metadata)
    if format == "onnx":
        extras.require(extras.ONNX_EXPORT, "Exporting to ONNX")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("Exporting needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    if (model_dir is None) == (model is None):
        raise ValueError("Give exactly one of --model-dir (a training run) or --model")
    if output is not None:
        check_output(output, format, overwrite)
    reference = runs.model_file(model_dir) if model_dir is not None else model
    source = models.open_model(reference, weights, input_size=input_size)
    if source.keras_model is None:
        raise ValueError(f"{model} is an exported model already; export its .keras file")
    output = output or default_output(source.name, format, quantize, model_dir)
    check_output(output, format, overwrite)
    network = models.as_float32(source.keras_model, source.input_size)
    probabilities = source.outputs == "probabilities"
    config = source.eval_config

    log(f"preparing {verification_images} held-out images")
    splits = _open_data(source, representative_data, data_dir, quantize, log)
    held_out = _pixels(splits.validation, config, verification_images)
    if len(held_out) < MIN_VERIFICATION_IMAGES:
        raise ValueError(
            f"Only {len(held_out)} held-out images to verify the export on; it needs at least "
            f"{MIN_VERIFICATION_IMAGES} (pass --representative-data with a larger validation split)"
        )
    serve = saved_model.serving_function(network, probabilities, config.mean, config.std)
    reference = np.concatenate([serve(batch)["probabilities"] for batch in _batches(held_out)])
    calibration = None
    if quantize == "int8":
        log(f"preparing {calibration_images} calibration images")
        shuffled = splits.train.shuffle(10 * calibration_images, seed=0)
        calibration = _pixels(shuffled, config, calibration_images)

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    kind = quantize if format == "tflite" else format
    with tempfile.TemporaryDirectory(dir=parent, prefix=".export-") as work:
        staged = os.path.join(work, os.path.basename(output))
        log(
            f"writing {format}{f' ({quantize})' if format == 'tflite' else ''} of "
            f"{source.name} at {source.input_size}x{source.input_size}"
        )
        operators = _write(
            network,
            probabilities,
            config,
            format,
            quantize,
            calibration,
            io_type,
            batch_size,
            staged,
            work,
        )
        sidecar = _metadata(source, format, quantize, staged, operators)
        gpu_delegate = client = None
        if format == "tflite":
            gpu_delegate = sidecar["gpu_delegate"] = _gpu_report(staged)
            sidecar["tflite_metadata"] = _write_tflite_metadata(
                staged, source, weights, sidecar, metadata, log
            )
        elif format == "onnx":
            from eca_keras.export import onnx_export

            onnx_export.add_metadata(staged, source.class_names, sidecar)
        artifact = artifacts.load_artifact(staged)
        outputs = artifact(held_out)
        measured = verify.measure(reference, outputs)
        report = verify.check(measured, kind)
        if format == "onnx":  # the batch dimension is dynamic: one image alone, the same
            verify.check(verify.measure(reference[:1], artifact(held_out[:1])), kind)
            report += " (and at batch 1)"
        log(f"verified {report}")
        if format == "tflite":
            client = sidecar["client_check"] = _client_check(
                staged, artifact.batch_size, sidecar, held_out, outputs, reference,
                source.class_names, kind, log,
            )  # fmt: skip
            log(gpu.summary(gpu_delegate))
        sidecar["verification"] = {**measured, "bound": dataclasses.asdict(verify.BOUNDS[kind])}
        labels, sidecar_path = _put_in_place(staged, output, source.class_names, sidecar, work)
    return ExportResult(
        output,
        format,
        quantize,
        _size(output),
        labels,
        sidecar_path,
        measured,
        operators,
        report,
        gpu_delegate,
        client,
    )


def default_output(name, format, quantize, model_dir=None):
    """``<run>/export/<name>[_<quantize>].tflite`` (``.onnx``, ``_saved_model``), or in
    ``./export``."""
    suffix = SUFFIXES.get(format, "_saved_model")
    stem = name if quantize == "none" else f"{name}_{quantize}"
    return os.path.join(model_dir or ".", "export", os.path.basename(stem) + suffix)


def check_output(output, format, overwrite=False):
    """Refuses an output path that would lose data, before any work is done."""
    output = os.fspath(output)
    suffix = SUFFIXES.get(format)
    if suffix and not output.endswith(suffix):
        raise ValueError(f"A {format} output must end in {suffix}; received {output}")
    if not os.path.lexists(output):
        return
    if suffix:
        if os.path.isdir(output):
            raise ValueError(f"{output} is a folder; give a {suffix} file path")
        if not overwrite:
            raise ValueError(f"{output} exists; pass --overwrite to replace it")
        return
    if not os.path.isdir(output):
        raise ValueError(f"{output} exists and is not a folder; a SavedModel is a folder")
    if not os.listdir(output):
        return
    if not overwrite:
        raise ValueError(
            f"{output} exists and is not empty; pass --overwrite to replace an earlier export"
        )
    if not (artifacts.is_saved_model(output) and os.path.isfile(artifacts.metadata_path(output))):
        raise ValueError(
            f"{output} is not a SavedModel written by eca-keras export; refusing to replace it "
            "(choose another --output)"
        )
    foreign = sorted(set(os.listdir(output)) - SAVED_MODEL_ENTRIES)
    if foreign:
        raise ValueError(
            f"{output} holds files eca-keras export did not write: {', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}; refusing to replace it (move them, or "
            "choose another --output)"
        )


def _check_arguments(format, quantize, io_type, batch_size, input_size, verification_images):
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; received {format!r}")
    if quantize not in tflite.QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {tflite.QUANTIZATIONS}; received {quantize!r}")
    if format != "tflite" and quantize != "none":
        raise ValueError(f"Quantization applies to TFLite; {format} is exported in float32")
    if io_type not in tflite.INT8_IO_TYPES:
        raise ValueError(f"io_type must be one of {tflite.INT8_IO_TYPES}; received {io_type!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}")
    if input_size is not None and (not isinstance(input_size, int) or input_size < MIN_INPUT_SIZE):
        raise ValueError(
            f"input_size must be an integer of at least {MIN_INPUT_SIZE}; received {input_size!r}"
        )
    if verification_images < MIN_VERIFICATION_IMAGES:
        raise ValueError(
            f"Verification needs at least {MIN_VERIFICATION_IMAGES} held-out images; "
            f"received {verification_images}"
        )


def _check_card(card):
    from eca_keras.export.metadata import CARD_FIELDS

    unknown = sorted(set(card or {}) - set(CARD_FIELDS))
    if unknown:
        raise ValueError(
            f"Unknown metadata fields {unknown}; the TFLite metadata has {', '.join(CARD_FIELDS)}"
        )


def _open_data(source, representative_data, data_dir, quantize, log):
    from eca_keras.data import classification

    dataset = representative_data or source.run_config.get("dataset")
    if dataset is None and quantize == "int8":
        raise ValueError(
            f"int8 quantization calibrates on images like those {source.name} will see: pass "
            "--representative-data (a dataset: folder, tfds:<name>, TFRecord glob)"
        )
    if dataset is None:
        log("note: verifying on the embedded digits (pass --representative-data for your images)")
        dataset = "digits"
    if representative_data is None and data_dir is None:
        data_dir = source.run_config.get("data_dir")
    return classification.load_splits(dataset, data_dir)


def _pixels(images, eval_config, count):
    """The first ``count`` images of a ``(image, label)`` dataset as uint8 model inputs."""
    if count < 1:
        raise ValueError(f"The number of images must be positive; received {count}")
    batches = images.take(count).map(lambda image, _: eval_pixels(image, eval_config))
    pixels = [batch.numpy() for batch in batches.batch(64)]
    if not pixels:
        raise ValueError("The dataset has no images to calibrate or verify the export with")
    return np.concatenate(pixels)


def _batches(images, size=64):
    for start in range(0, len(images), size):
        yield images[start : start + size]


def _write(
    network, probabilities, config, format, quantize, calibration, io_type, batch, staged, work
):
    if format == "saved_model":
        saved_model.write_saved_model(
            network, probabilities, staged, config.input_size, mean=config.mean, std=config.std
        )
        return None
    if format == "onnx":
        from eca_keras.export import onnx_export

        onnx_export.write_onnx(
            network, staged, config.input_size, probabilities, config.mean, config.std
        )
        return onnx_export.describe(staged)["operators"]
    return tflite.write_tflite(
        network,
        staged,
        config.input_size,
        quantize,
        calibration,
        io_type,
        batch,
        outputs_probabilities=probabilities,
        mean=config.mean,
        std=config.std,
    )


def _metadata(source, format, quantize, staged, operators):
    """The sidecar as far as it is known before verification (TFLite and ONNX files carry it
    inside too)."""
    from eca_keras import __version__

    input_dtype, quantization = "uint8", None
    if format == "tflite":
        artifact = artifacts.load_artifact(staged)
        input_dtype = np.dtype(artifact.input_dtype).name
        scale, zero_point = artifact.input_quantization
        quantization = [scale, zero_point] if scale else None
    metadata = {
        "model": source.name,
        "format": format,
        "quantize": quantize,
        "classes": len(source.class_names),
        "input": {
            "name": "images",
            "dtype": input_dtype,
            "size": source.eval_config.input_size,
            "quantization": quantization,
            "pixels": "RGB in [0, 255], resized and center-cropped as eval describes",
        },
        "output": {"name": "probabilities"},
        "eval": source.eval_config.to_dict(),
        "operators": operators,
        "eca_keras_version": __version__,
    }
    if format == "onnx":
        from eca_keras.export import onnx_export

        described = onnx_export.describe(staged)
        metadata["onnx"] = {key: described[key] for key in ("opset", "producer")}
        metadata["input"]["shape"] = described["inputs"][0]["shape"]
    return metadata


def _gpu_report(path):
    with open(path, "rb") as handle:
        return gpu.gpu_report(handle.read())


def model_card(source, weights, quantize, overrides=None):
    """The TFLite metadata's name, description, version, author and license: ``overrides``
    over defaults (a registered model's ImageNet weights bring their license)."""
    from eca_keras import __version__
    from eca_keras.applications import registry

    dataset = source.run_config.get("dataset")
    name = f"{source.name} ({dataset})" if dataset else source.name
    entry = None
    if source.kind == "registered" and isinstance(weights, str):
        info = registry.model_info(source.name)
        if weights == "imagenet":
            entry = info.default_weights
        else:
            entry = next((e for e in info.weights if weights in (e.tag, e.name)), None)
    size = source.eval_config.input_size
    card = {
        "name": name,
        "description": (
            f"{name}: an image classifier of {len(source.class_names)} classes (ECA-Net, "
            f"Efficient Channel Attention), exported by eca_keras {__version__} as TFLite "
            f"({quantize}). Input: RGB pixels {size}x{size}, normalised inside the model; "
            "output: class probabilities."
        ),
        "version": "1",
        "author": AUTHOR,
        "license": entry.license if entry and entry.license else "unspecified",
    }
    return {**card, **(overrides or {})}


def _write_tflite_metadata(staged, source, weights, sidecar, overrides, log):
    """Rewrites the staged ``.tflite`` with metadata; returns what the sidecar records."""
    missing = extras.missing(extras.MEDIAPIPE)
    if missing:
        return {"written": False, "reason": f"{missing[0]} is not installed"}
    from eca_keras.export import metadata

    card = model_card(source, weights, sidecar["quantize"], overrides)
    with open(staged, "rb") as handle:
        flatbuffer = handle.read()
    packed = {key: sidecar[key] for key in metadata.PACKED_SIDECAR_KEYS}
    with open(staged, "wb") as handle:
        handle.write(metadata.write_tflite_metadata(flatbuffer, source.class_names, packed, card))
    mean, std = metadata.NORMALIZATION[sidecar["input"]["dtype"]]
    log(
        f"metadata: {card['name']!r}, {len(source.class_names)} labels, normalisation mean "
        f"{mean} std {std} ({sidecar['input']['dtype']} input), the evaluation transform, "
        f"license {card['license']!r}"
    )
    return {"written": True, **card, "normalization": {"mean": mean, "std": std}}


def _client_check(staged, batch_size, sidecar, held_out, litert, reference, labels, kind, log):
    """MediaPipe's ImageClassifier on the staged file (``batch_size``: its static batch), or
    why it was skipped."""
    reason = None
    if not sidecar["tflite_metadata"]["written"]:
        reason = (
            "MediaPipe is not installed: the .tflite has no metadata and the client check "
            f"(MediaPipe's ImageClassifier) was skipped; {extras.install_hint()}"
        )
    elif sidecar["input"]["dtype"] not in ("uint8", "float32"):
        reason = "MediaPipe takes uint8 or float32 inputs only (export with --io-type uint8)"
    elif batch_size != 1:
        reason = "MediaPipe runs batch-1 files only (export with --batch-size 1)"
    if reason:
        log(f"note: {reason}")
        return {"skipped": reason}
    from eca_keras.export import mediapipe_check

    figures = mediapipe_check.check(
        staged, held_out, litert, reference, labels, kind, sidecar["input"]["dtype"]
    )
    log(
        "MediaPipe's ImageClassifier agrees: scores within "
        f"{figures['max_abs_difference_vs_litert']:.1e} of LiteRT's, every category named as "
        f"labelled, top-1 agreement with Keras {100 * figures['vs_keras']['top1_agreement']:.2f}%"
        f" on {figures['images']} images"
    )
    return {"runtime": "MediaPipe Tasks ImageClassifier", **figures}


def _put_in_place(staged, output, class_names, metadata, work):
    """Moves the verified artifact to ``output`` and writes its labels file and sidecar;
    returns their paths. An earlier export at ``output`` (checked by :func:`check_output`) is
    moved into ``work`` first and deleted with it."""
    labels, sidecar = artifacts.labels_path(output), artifacts.metadata_path(output)
    metadata["labels"] = os.path.basename(labels)
    label_lines = "".join(f"{name}\n" for name in class_names)
    if os.path.isdir(staged):  # a SavedModel carries its labels and sidecar inside
        write_atomically(artifacts.labels_path(staged), label_lines)
        write_atomically(artifacts.metadata_path(staged), json.dumps(metadata, indent=2) + "\n")
        if os.path.isdir(output) and os.listdir(output):
            os.replace(output, os.path.join(work, "replaced"))
        elif os.path.isdir(output):
            os.rmdir(output)  # empty: nothing is lost
        os.replace(staged, output)
    else:
        os.replace(staged, output)
        write_atomically(labels, label_lines)
        write_atomically(sidecar, json.dumps(metadata, indent=2) + "\n")
    return labels, sidecar


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )
