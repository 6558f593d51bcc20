"""Speed and memory of the ECA models side by side with their plain twins, keras.applications
and the PyTorch reference (``eca-keras benchmark``): the harness every benchmark script uses.

Attributes load lazily: describing a run (:class:`Settings`) needs no TensorFlow.
"""

from eca_keras import lazy

_LAZY = {
    "Settings": "eca_keras.benchmark.settings",
    "Timing": "eca_keras.benchmark.timing",
    "compare": "eca_keras.benchmark.timing",
    "markdown": "eca_keras.benchmark.report",
    "run": "eca_keras.benchmark.suite",
}
__all__ = sorted(_LAZY)


__getattr__ = lazy.attributes(__name__, _LAZY)
