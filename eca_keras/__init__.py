"""ECA-Net (Efficient Channel Attention, CVPR 2020) for Keras 3.

>>> from eca_keras import ECA
>>> from eca_keras.applications import ECAResNet50

Attributes load lazily, so ``import eca_keras`` (and the ``eca-keras`` command) does not import
TensorFlow until a layer or model is asked for.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.3.3"

from eca_keras import lazy  # noqa: E402 (after the version, which setup.py reads)

_LAZY = {
    "ECA": "eca_keras.layers",
    "eca_kernel_size": "eca_keras.layers",
    "applications": "eca_keras.applications",
    "layers": "eca_keras.layers",
}

__all__ = ["ECA", "__version__", "applications", "eca_kernel_size", "layers"]


__getattr__ = lazy.attributes(__name__, _LAZY)


def __dir__():
    return sorted(set(globals()) | set(__all__))


# Keras finds custom classes (ECA in a .keras file, the keras-hub classes of a preset) only once
# they are registered, i.e. once the module defining them has been imported. That import needs
# Keras, which `import eca_keras` must not pull in (the CLI lists models without TensorFlow). So
# the registering modules are imported as soon as the library they extend is: now, if it is
# loaded already, else right after it is.
_REGISTER_WITH = {"keras": "eca_keras.layers", "keras_hub": "eca_keras.hub"}


def _register(library):
    module = _REGISTER_WITH[library]
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds Keras and keras-hub as the other finders do, and registers eca_keras' classes
    right after the library's own module has run."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _REGISTER_WITH:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _RegisteringLoader(spec.loader, fullname)
                return spec
        return None


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader, library):
        self.loader, self.library = loader, library

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _register(self.library)

    def __getattr__(self, name):  # resource readers and the rest, as the original loader
        return getattr(self.loader, name)


for _library in _REGISTER_WITH:
    if _library in sys.modules:
        _register(_library)
if not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterImport())
