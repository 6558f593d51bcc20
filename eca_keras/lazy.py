"""Module attributes imported on first use (PEP 562), so that importing a package stays cheap
(listing models needs no TensorFlow)."""

import importlib


def attributes(module_name, table):
    """A module-level ``__getattr__`` for ``table`` (``{attribute: module that defines it}``);
    an attribute named like its module is the module itself."""
    module_globals = importlib.import_module(module_name).__dict__

    def __getattr__(name):  # noqa: N807 (the module hook's name)
        if name not in table:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        module = importlib.import_module(table[name])
        value = module if module.__name__.rsplit(".", 1)[-1] == name else getattr(module, name)
        module_globals[name] = value
        return value

    return __getattr__
