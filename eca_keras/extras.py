"""Optional dependencies: which extra of ``pip install eca-keras[...]`` brings a module, and one
clear error where one is missing. Checking imports nothing (``importlib.util.find_spec``)."""

import importlib.util

DEPLOY = "deploy"  # MediaPipe (TFLite metadata, its client check), tf2onnx, onnx, onnxruntime
MEDIAPIPE = ("mediapipe",)
ONNX_EXPORT = ("tf2onnx", "onnx", "onnxruntime")
ONNX_RUNTIME = ("onnxruntime",)


def missing(modules):
    """The top-level ``modules`` that cannot be imported here."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def install_hint(extra=DEPLOY):
    return f"pip install 'eca-keras[{extra}]'"


def require(modules, purpose, extra=DEPLOY):
    """Raises ``RuntimeError`` naming what ``purpose`` needs and how to install it."""
    absent = missing(modules)
    if absent:
        raise RuntimeError(
            f"{purpose} needs the extra eca-keras[{extra}] ({', '.join(absent)} missing): "
            f"{install_hint(extra)}"
        )
