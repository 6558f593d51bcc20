"""Copying an upstream (PyTorch-layout) state dict into a Keras model, keys and shapes checked."""

import dataclasses
import importlib
import os

import keras
import numpy as np

from eca_keras.applications import registry
from eca_keras.convert.torch_checkpoint import CheckpointFormatError, read_state_dict
from eca_keras.layers import ECA

# Keras layer class -> (upstream parameter names, PyTorch array -> Keras array) per Keras weight;
# a subclass without a row of its own (DescriptorBatchNormalization, PointwiseConv2D) takes its
# base class's.
_IDENTITY = np.asarray
_BATCH_NORM = (
    ("weight", _IDENTITY),
    ("bias", _IDENTITY),
    ("running_mean", _IDENTITY),
    ("running_var", _IDENTITY),
)
_LAYOUTS = {
    keras.layers.Conv2D: (("weight", lambda w: w.transpose(2, 3, 1, 0)),),  # OIHW -> HWIO
    keras.layers.DepthwiseConv2D: (("weight", lambda w: w.transpose(2, 3, 0, 1)),),  # C1HW -> HWC1
    keras.layers.BatchNormalization: _BATCH_NORM,
    keras.layers.Dense: (("weight", lambda w: w.T), ("bias", _IDENTITY)),
    ECA: (("weight", lambda w: w.reshape(-1, 1, 1)),),  # Conv1d [1, 1, k] -> (k, 1, 1), no flip
}
# Keys a Keras model never needs: BatchNorm step counters; the head when include_top=False.
_IGNORED_SUFFIXES = (".num_batches_tracked",)
_HEAD_PREFIXES = ("fc.", "classifier.", "head.fc.")


class WeightMismatchError(ValueError):
    """A checkpoint does not fit the model (wrong shapes, missing or unexpected keys)."""


@dataclasses.dataclass
class ConversionReport:
    """What was copied, and what the checkpoint holds that the model does not use."""

    loaded_layers: int
    loaded_tensors: int
    unused_keys: list


def name_map(family):
    """The converter module of a model family: ``eca_keras.convert.<family>``, with
    ``upstream_names(layer_names, state_keys)``, ``matches(state_keys)`` and optionally
    ``LAYOUTS`` for the family's own layer classes."""
    try:
        return importlib.import_module(f"eca_keras.convert.{family}")
    except ModuleNotFoundError:
        raise WeightMismatchError(f"No checkpoint converter exists for family {family!r}") from None


def _family_of(model, state_keys):
    """The family of ``model``: the registry's when the model has a registered name, else the
    first family whose converter recognises the checkpoint's keys."""
    if registry.is_registered(model.name):
        return registry.model_info(model.name).family
    families = dict.fromkeys(registry.model_info(name).family for name in registry.list_models())
    for family in families:
        if name_map(family).matches(state_keys):
            return family
    raise WeightMismatchError(
        f"Cannot tell which family the model {model.name!r} belongs to; pass family= "
        f"(one of {', '.join(families)})"
    )


def _layout(layer, converter):
    """The layout of the nearest class in ``layer``'s MRO that has one (the family's first)."""
    layouts = {**_LAYOUTS, **getattr(converter, "LAYOUTS", {})}
    for cls in type(layer).__mro__:
        if cls in layouts:
            return layouts[cls]
    raise WeightMismatchError(
        f"No upstream layout is known for layer {layer.name!r} ({type(layer).__name__})"
    )


def read_checkpoint(path):
    """Reads a PyTorch pickle (``.pth``/``.pth.tar``/``.bin``) or a safetensors file to numpy."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such checkpoint file: {path}")
    with open(path, "rb") as handle:
        head = handle.read(9)
    # safetensors: an 8-byte little-endian header length, then a JSON header.
    if len(head) == 9 and head[8:9] == b"{" and head[:2] not in (b"PK", b"\x80\x02"):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            return dict(load_file(path))
        except SafetensorError as error:  # truncated, bad JSON header, impossible sizes
            raise CheckpointFormatError(
                f"{path}: not a readable safetensors file ({' '.join(str(error).split())})"
            ) from None
    return read_state_dict(path)


def apply_state_dict(model, state_dict, allow_unused=False, family=None):
    """Copies ``state_dict`` into ``model`` (any model built by ``eca_keras.applications``).

    Every Keras layer with weights must find its keys with exactly the right shapes; otherwise a
    :class:`WeightMismatchError` names the key and both shapes (in PyTorch's layout). Keys the
    model does not use are an error too, except the classifier of a model built with
    ``include_top=False`` and BatchNorm step counters; ``allow_unused=True`` only reports them.
    ``family`` (``"resnet"``, ``"mobilenet_v2"``, ...) picks the name map; by default the
    registry's family of ``model.name``, else the one that recognises the keys.
    """
    converter = name_map(family or _family_of(model, list(state_dict)))
    weighted = [layer for layer in model.layers if layer.weights]
    mapping = converter.upstream_names([layer.name for layer in weighted], list(state_dict))
    include_top = any(layer.name == "predictions" for layer in weighted)
    used, missing = set(), []
    assignments = []
    for layer in weighted:
        prefix = mapping.get(layer.name)
        if prefix is None:
            raise WeightMismatchError(f"Layer {layer.name!r} has no upstream name in the name map")
        arrays = []
        for (param, to_keras), variable in zip(
            _layout(layer, converter), layer.weights, strict=True
        ):
            key = f"{prefix}.{param}"
            if key not in state_dict:
                missing.append(key)
                continue
            value = np.asarray(state_dict[key])
            converted = to_keras(value)
            if tuple(converted.shape) != tuple(variable.shape):
                expected = _to_upstream_shape(type(layer), param, tuple(variable.shape))
                raise WeightMismatchError(
                    f"Checkpoint key {key!r} has shape {list(value.shape)}, but Keras layer "
                    f"{layer.name!r} needs {list(expected)} (Keras shape {list(variable.shape)}). "
                    "Is the checkpoint of another model or ECA kernel size?"
                )
            arrays.append(converted.astype(variable.dtype))
            used.add(key)
        assignments.append((layer, arrays))
    if missing:
        raise WeightMismatchError(
            f"The checkpoint lacks {len(missing)} key(s) the model needs: {_preview(missing)}"
        )
    unused = [
        key
        for key in state_dict
        if key not in used
        and not key.endswith(_IGNORED_SUFFIXES)
        and (include_top or not key.startswith(_HEAD_PREFIXES))
    ]
    if unused and not allow_unused:
        raise WeightMismatchError(
            f"The checkpoint has {len(unused)} key(s) the model does not use: {_preview(unused)}"
        )
    for layer, arrays in assignments:
        layer.set_weights(arrays)
    return ConversionReport(len(assignments), len(used), unused)


def apply_checkpoint(model, path, allow_unused=False, family=None):
    """Reads an upstream checkpoint file and copies it into ``model``; returns the report."""
    return apply_state_dict(model, read_checkpoint(path), allow_unused=allow_unused, family=family)


def _to_upstream_shape(layer_class, param, keras_shape):
    if param == "weight" and issubclass(layer_class, keras.layers.Conv2D):
        return (keras_shape[3], keras_shape[2], keras_shape[0], keras_shape[1])
    if param == "weight" and layer_class is keras.layers.DepthwiseConv2D:
        return (keras_shape[2], keras_shape[3], keras_shape[0], keras_shape[1])
    if param == "weight" and layer_class is keras.layers.Dense:
        return keras_shape[::-1]
    if param == "weight" and layer_class is ECA:
        return (1, 1, keras_shape[0])
    return keras_shape


def _preview(keys, limit=8):
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
