"""TFLite (LiteRT) flatbuffers from a SavedModel of :mod:`eca_keras.export.saved_model`.

Converted from a batch-1 (by default), static-shape SavedModel with builtin ops only: the
converter is never allowed Flex (SELECT_TF_OPS) or custom ops, and the written flatbuffer is
checked again (:func:`check_builtin_ops`).
"""

import collections
import os
import re
import tempfile

import numpy as np

from eca_keras.preprocessing import IMAGENET_MEAN, IMAGENET_STD

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
INT8_IO_TYPES = ("uint8", "int8")


class ExportError(RuntimeError):
    """The model cannot be exported as asked (e.g. it needs non-builtin TFLite ops)."""


def convert_to_tflite(saved_model, quantize="none", representative_images=None, io_type="uint8"):
    """Flatbuffer bytes of a SavedModel written by :func:`write_saved_model`.

    ``float16``: float16 weights; ``dynamic``: int8 weights, float activations; ``int8``: full
    integer, calibrated on ``representative_images`` (float32 pixels, the SavedModel's input
    must be float32), with ``io_type`` (uint8 or int8) input and output.
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}; received {quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if io_type not in INT8_IO_TYPES:
            raise ValueError(f"io_type must be one of {INT8_IO_TYPES}; received {io_type!r}")
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = _calibration_feed(representative_images)
        converter.inference_input_type = converter.inference_output_type = tf.as_dtype(io_type)
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # the converter raises ConverterError and plain exceptions
        raise ExportError(_conversion_failure(error)) from error
    check_builtin_ops(flatbuffer)
    return flatbuffer


def write_tflite(
    model,
    path,
    input_size,
    quantize="none",
    calibration=None,
    io_type="uint8",
    batch=1,
    outputs_probabilities=True,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
):
    """Keras ``model`` -> the camera-facing ``.tflite`` at ``path`` (uint8 pixels in,
    probabilities out, builtin ops only); returns its operator counts. The conversion every
    export and every benchmark runs: a SavedModel of the serving function in a temporary folder,
    then :func:`convert_to_tflite` (full-integer calibration feeds float pixels; the converter
    puts the (u)int8 input in front)."""
    from eca_keras.export.saved_model import write_saved_model

    dtype = "float32" if quantize == "int8" else "uint8"
    with tempfile.TemporaryDirectory(
        prefix=".serving-", dir=os.path.dirname(os.path.abspath(path))
    ) as work:
        serving = os.path.join(work, "serving")
        write_saved_model(
            model, outputs_probabilities, serving, input_size, dtype, batch, mean, std
        )
        flatbuffer = convert_to_tflite(serving, quantize, calibration, io_type)
    with open(path, "wb") as handle:
        handle.write(flatbuffer)
    return operator_counts(flatbuffer)


def _calibration_feed(images):
    """The representative dataset: one ramp over ``[0, 255]`` first, so that the calibrated
    input range is exactly the pixel range (input scale 1, zero point 0 for uint8 and -128 for
    int8: raw camera pixels go in unchanged), then the given images, one at a time."""
    if images is None or not len(images):
        raise ValueError("int8 quantization needs representative images to calibrate on")
    images = np.asarray(images, "float32")
    ramp = np.linspace(0.0, 255.0, images[0].size, dtype="float32").reshape(images[0].shape)

    def feed():
        yield [ramp[None]]
        for image in images:
            yield [image[None]]

    return feed


def _conversion_failure(error):
    text = str(error)
    flex = re.search(r"TF Select ops: ([^\n]+)", text)
    if flex:
        return (
            "the model needs TensorFlow ops that TFLite has no builtin kernel for "
            f"({flex.group(1).strip()}); mobile runtimes lack the Flex delegate, so the export "
            "is refused"
        )
    first = next((line for line in text.splitlines() if "error" in line.lower()), text)
    return f"TFLite conversion failed: {first.strip()[:500]}"


def operator_counts(flatbuffer):
    """``{op name: how many}`` of a TFLite flatbuffer; custom ops are named ``CUSTOM:<name>``."""
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if name.isupper()}
    model = schema.Model.GetRootAs(flatbuffer, 0)
    codes = []
    for index in range(model.OperatorCodesLength()):
        entry = model.OperatorCodes(index)
        code = max(entry.BuiltinCode(), entry.DeprecatedBuiltinCode())
        name = names.get(code, f"UNKNOWN_{code}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(entry.CustomCode() or b'?').decode()}"
        codes.append(name)
    counts = collections.Counter()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            counts[codes[subgraph.Operators(o).OpcodeIndex()]] += 1
    return dict(sorted(counts.items()))


def check_builtin_ops(flatbuffer):
    """Raises :class:`ExportError` if the flatbuffer uses a Flex (SELECT_TF_OPS) or custom op."""
    # Flex ops are stored as custom ops named "Flex<TF op>".
    foreign = sorted(
        name for name in operator_counts(flatbuffer) if name.startswith(("CUSTOM", "UNKNOWN"))
    )
    if foreign:
        raise ExportError(
            f"the TFLite model contains non-builtin ops {foreign}; mobile runtimes lack the Flex "
            "delegate and custom kernels, so the export is refused"
        )
