"""ECA-Net (Efficient Channel Attention, CVPR 2020) for Keras 3.

>>> from eca_keras import ECA
>>> from eca_keras.applications import ECAResNet50

Attributes load lazily, so ``import eca_keras`` (and the ``eca-keras`` command) does not import
TensorFlow until a layer or model is asked for.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "ECA": "eca_keras.layers",
    "eca_kernel_size": "eca_keras.layers",
    "applications": "eca_keras.applications",
    "layers": "eca_keras.layers",
}

__all__ = ["ECA", "__version__", "applications", "eca_kernel_size", "layers"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'eca_keras' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith(name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
