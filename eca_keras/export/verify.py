"""Does an exported artifact compute what the Keras model computes? Measured, then bounded.

Both sides get the same uint8 held-out images; the Keras side is the serving function run by
TensorFlow on the in-memory model. ``max_relative_difference`` is the largest absolute
difference of the probabilities divided by the largest reference probability;
``top1_agreement`` is the fraction of images whose best class is the same.
"""

import dataclasses

import numpy as np


class VerificationError(RuntimeError):
    """An exported artifact does not compute what the Keras model computes."""


@dataclasses.dataclass(frozen=True)
class Bound:
    max_relative_difference: float | None = None
    min_top1_agreement: float | None = None


BOUNDS = {
    # artifact kind (the SavedModel, or a TFLite quantization) -> what it must achieve
    "saved_model": Bound(max_relative_difference=1e-4),
    "onnx": Bound(max_relative_difference=1e-4),
    "none": Bound(max_relative_difference=1e-4),
    "float16": Bound(max_relative_difference=1e-2),
    "dynamic": Bound(min_top1_agreement=0.98),
    "int8": Bound(min_top1_agreement=0.98),
}


# The client check (MediaPipe's ImageClassifier) against the LiteRT interpreter on the same file:
# the largest absolute score difference. Measured 0.0 for every quantization (both run the file's
# own kernels); int8 scores are multiples of 1/256, so one step is allowed there.
CLIENT_BOUNDS = {"none": 1e-5, "float16": 1e-5, "dynamic": 1e-5, "int8": 1 / 256}


def describe_bounds():
    """The bounds in words, for help texts."""
    parts = []
    for kind, bound in BOUNDS.items():
        if bound.max_relative_difference is not None:
            parts.append(f"{kind} <= {bound.max_relative_difference:.0e} relative")
        else:
            parts.append(f"{kind} >= {100 * bound.min_top1_agreement:.0f}% top-1 agreement")
    return ", ".join(parts)


def measure(reference, outputs):
    """``{"max_relative_difference", "top1_agreement", "images"}`` of ``outputs`` against
    ``reference`` (both ``(N, classes)`` probabilities)."""
    reference = np.asarray(reference, "float64")
    outputs = np.asarray(outputs, "float64")
    if reference.shape != outputs.shape:
        raise VerificationError(
            f"the artifact returns shape {outputs.shape}; the Keras model {reference.shape}"
        )
    scale = max(float(np.max(np.abs(reference))), np.finfo("float32").tiny)
    return {
        "max_relative_difference": float(np.max(np.abs(outputs - reference)) / scale),
        "top1_agreement": float(np.mean(outputs.argmax(axis=1) == reference.argmax(axis=1))),
        "images": len(reference),
    }


def check(measured, kind):
    """Raises :class:`VerificationError` when ``measured`` is outside ``BOUNDS[kind]``; returns
    a one-line report of what was measured against which bound."""
    bound = BOUNDS[kind]
    difference, agreement = measured["max_relative_difference"], measured["top1_agreement"]
    report = (
        f"{kind}: max relative difference {difference:.2e}"
        + (f" (bound {bound.max_relative_difference:.0e})" if bound.max_relative_difference else "")
        + f", top-1 agreement {100 * agreement:.2f}%"
        + (f" (bound {100 * bound.min_top1_agreement:.0f}%)" if bound.min_top1_agreement else "")
        + f" on {measured['images']} held-out images"
    )
    too_far = bound.max_relative_difference is not None and not (
        difference <= bound.max_relative_difference
    )
    disagrees = bound.min_top1_agreement is not None and agreement < bound.min_top1_agreement
    if too_far or disagrees:
        raise VerificationError(f"verification failed: {report}")
    return report
