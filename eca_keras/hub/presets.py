"""Preset names for every registered weight, and where their presets are cached.

``eca_resnet50_imagenet`` (the official release's weights), ``ecaresnet50d_miil_in1k``,
``ecaresnet50t_a1_in1k`` ... (timm's ``<model>.<tag>`` with ``_`` for ``.``): each names a
:class:`~eca_keras.applications.registry.WeightEntry`. ``ECAImageClassifier.from_preset(name)``
builds the preset once from the upstream checkpoint (as ``weights="imagenet"`` fetches and converts
it) under ``$KERAS_HOME/models/eca_keras/presets/<name>``, and loads the cached one later, checked
against its sha256 manifest.
"""

import json
import os

from eca_keras import downloads
from eca_keras.applications import registry
from eca_keras.applications.weights import PRESET_INFO, cache_dir
from eca_keras.files import write_atomically


def preset_name(entry):
    """The preset name of a weight entry."""
    tag = "imagenet" if entry.tag == "official" else entry.tag.replace(".", "_")
    return f"{entry.model}_{tag}"


def preset_names():
    """``{preset name: WeightEntry}`` for every registered weight."""
    return {preset_name(entry): entry for entry in registry.weight_entries().values()}


def preset_dir(name):
    return os.path.join(cache_dir(), "presets", name)


def cached_preset(name):
    """The cached folder of preset ``name`` if it is there and intact, else None."""
    folder = preset_dir(name)
    if os.path.isfile(os.path.join(folder, downloads.MANIFEST)) and not downloads.damaged_files(
        folder
    ):
        return folder
    return None


def write_info(folder, info):
    """Writes a preset's ``eca_keras.json`` (what eca_keras reads back: architecture, classes,
    evaluation transform, source)."""
    write_atomically(os.path.join(folder, PRESET_INFO), json.dumps(info, indent=2) + "\n")
