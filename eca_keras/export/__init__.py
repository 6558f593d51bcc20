"""SavedModel and TFLite (LiteRT) export, verified against the Keras model.

>>> from eca_keras.export import export, load_artifact
>>> result = export("digits.tflite", model_dir="runs/eca_mobilenet_v2-digits", quantize="int8")
>>> probabilities = load_artifact(result.path)(uint8_images)

Every artifact takes uint8 RGB pixels at the model's input size (the normalisation is inside)
and returns class probabilities; see :func:`export` for the formats and the checks.
"""

from eca_keras.artifacts import load_artifact, read_metadata
from eca_keras.export.exporter import FORMATS, ExportResult, default_output, export
from eca_keras.export.tflite import QUANTIZATIONS, ExportError, check_builtin_ops, operator_counts
from eca_keras.export.verify import BOUNDS, VerificationError

__all__ = [
    "BOUNDS",
    "FORMATS",
    "QUANTIZATIONS",
    "ExportError",
    "ExportResult",
    "VerificationError",
    "check_builtin_ops",
    "default_output",
    "export",
    "load_artifact",
    "operator_counts",
    "read_metadata",
]
