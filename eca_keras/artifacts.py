"""Running exported models: a SavedModel directory, a ``.tflite`` or an ``.onnx`` file, with its
sidecar.

Every artifact takes what a camera gives: uint8 RGB pixels ``(N, S, S, 3)`` at the model's input
size (the normalisation is inside it), and returns class probabilities ``(N, classes)``.
TFLite files run in the LiteRT interpreter (``ai-edge-litert``) with XNNPACK, one static batch
at a time; full-integer models get their inputs quantised and their outputs dequantised here
with the scales stored in the file. ONNX files run in ONNX Runtime (the extra
``eca-keras[deploy]``) on the CPU, any batch at once.

Beside each artifact, :func:`metadata_path` names a JSON sidecar (the evaluation transform, the
labels file, what the export measured) and :func:`labels_path` a labels file, one class a line.
"""

import json
import os

import numpy as np

from eca_keras import extras

METADATA_FILE = "eca_keras.json"  # inside a SavedModel directory
LABELS_FILE = "labels.txt"


def is_saved_model(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def is_tflite(path):
    return str(path).endswith(".tflite")


def is_onnx(path):
    return str(path).endswith(".onnx")


def is_artifact(path):
    """Whether ``path`` is an exported model (a ``.tflite`` or ``.onnx`` file or a SavedModel
    directory)."""
    return is_tflite(path) or is_onnx(path) or is_saved_model(path)


def metadata_path(path):
    """The JSON sidecar of an artifact: inside a SavedModel, ``<stem>.json`` beside a file."""
    if is_tflite(path) or is_onnx(path):
        return os.path.splitext(path)[0] + ".json"
    return os.path.join(path, METADATA_FILE)


def labels_path(path):
    """The labels file of an artifact: inside a SavedModel, ``<stem>_labels.txt`` beside a file."""
    if is_tflite(path) or is_onnx(path):
        return os.path.splitext(path)[0] + "_labels.txt"
    return os.path.join(path, LABELS_FILE)


def read_metadata(path):
    """The artifact's sidecar as a dict, ``{}`` where there is none."""
    sidecar = metadata_path(path)
    if not os.path.isfile(sidecar):
        return {}
    with open(sidecar) as handle:
        return json.load(handle)


class SavedModelArtifact:
    """A SavedModel's ``serving_default`` signature, loaded with ``tf.saved_model.load``."""

    def __init__(self, path):
        import tensorflow as tf

        self.path = path
        self._loaded = tf.saved_model.load(path)
        self._serve = self._loaded.signatures["serving_default"]
        spec = next(iter(self._serve.structured_input_signature[1].values()))
        self.input_size = int(spec.shape[1])
        self.input_dtype = spec.dtype.as_numpy_dtype
        self.num_classes = int(self._serve.structured_outputs["probabilities"].shape[-1])

    def __call__(self, images):
        import tensorflow as tf

        outputs = self._serve(tf.constant(np.asarray(images, self.input_dtype)))
        return outputs["probabilities"].numpy()


class TFLiteArtifact:
    """A ``.tflite`` file in the LiteRT interpreter (XNNPACK on the CPU)."""

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such TFLite file: {path}")
        self.path = path
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.batch_size = int(self._input["shape"][0])
        self.input_size = int(self._input["shape"][1])
        self.input_dtype = self._input["dtype"]
        self.output_dtype = self._output["dtype"]
        self.num_classes = int(self._output["shape"][-1])
        self.input_quantization = tuple(self._input["quantization"])
        self.output_quantization = tuple(self._output["quantization"])

    def invoke(self, batch):
        """One interpreter call on an input already in the file's own type and batch size."""
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def __call__(self, images):
        images = np.asarray(images)
        results = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            padded = np.zeros((self.batch_size, *chunk.shape[1:]), chunk.dtype)
            padded[: len(chunk)] = chunk
            outputs = self.invoke(self._to_input_type(padded))
            results.append(self._from_output_type(outputs)[: len(chunk)])
        return np.concatenate(results)

    def _to_input_type(self, pixels):
        scale, zero_point = self.input_quantization
        if scale == 0:  # float input, or uint8 pixels cast to float inside the model
            return pixels.astype(self.input_dtype)
        info = np.iinfo(self.input_dtype)
        quantized = np.round(pixels.astype("float32") / scale + zero_point)
        return np.clip(quantized, info.min, info.max).astype(self.input_dtype)

    def _from_output_type(self, outputs):
        scale, zero_point = self.output_quantization
        if scale == 0:
            return outputs.astype("float32")
        return (outputs.astype("float32") - zero_point) * scale


class ONNXArtifact:
    """An ``.onnx`` file in ONNX Runtime (CPU); its batch dimension is dynamic, so images go in
    ``batch_size`` at a time."""

    def __init__(self, path, num_threads=None):
        extras.require(extras.ONNX_RUNTIME, "Running an ONNX file")
        import onnxruntime

        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such ONNX file: {path}")
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.path = path
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        (source,), (result,) = self.session.get_inputs(), self.session.get_outputs()
        self._input_name = source.name
        self.input_size = int(source.shape[1])
        self.input_dtype = np.dtype(source.type.removeprefix("tensor(").rstrip(")"))
        self.num_classes = int(result.shape[-1])

    def invoke(self, batch):
        """One session run on an input already in the file's own type."""
        return self.session.run(None, {self._input_name: batch})[0]

    def __call__(self, images, batch_size=64):
        images = np.asarray(images, self.input_dtype)
        chunks = [
            self.invoke(images[start : start + batch_size])
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate(chunks).astype("float32")


def load_artifact(path, num_threads=None):
    """A callable exported model: uint8 pixels ``(N, S, S, 3)`` -> probabilities ``(N, C)``."""
    path = str(path)
    if is_tflite(path):
        return TFLiteArtifact(path, num_threads=num_threads)
    if is_onnx(path):
        return ONNXArtifact(path, num_threads=num_threads)
    if is_saved_model(path):
        return SavedModelArtifact(path)
    raise ValueError(
        f"{path!r} is neither a .tflite or .onnx file nor a SavedModel directory (with "
        "saved_model.pb)"
    )
