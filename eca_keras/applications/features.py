"""Multi-scale features of any registered model: the feature pyramid ``{"P1": ..., "P5": ...}``.

``Pn`` is at stride ``2^n``: the output of the last block at that stride (the stem's activation for
P1), as timm's ``features_only`` returns them and as keras-hub's ``FeaturePyramidBackbone`` names
them. Each family says which layers those are (``pyramid_layers(layer_names)`` in its module).
"""

import importlib

from eca_keras.applications import registry

LEVELS = ("P1", "P2", "P3", "P4", "P5")


def pyramid_layer_names(name, layer_names):
    """``{level: layer name}`` of registered model ``name``'s pyramid, from its layers' names."""
    family = importlib.import_module(f"eca_keras.applications.{registry.model_info(name).family}")
    return family.pyramid_layers(list(layer_names))


def feature_pyramid(
    name, weights=None, levels=("P2", "P3", "P4", "P5"), input_shape=None, **arguments
):
    """A ``keras.Model`` returning ``{level: feature map}`` of registered model ``name``.

    ``weights`` and the other ``arguments`` (``kernel_sizes``, ``attention``, ...) go to the
    model's constructor (with ``include_top=False``), so ImageNet weights, converted files and
    hub handles load as usual. ``levels``: a subset of ``P1``..``P5``.
    """
    import keras

    levels = tuple(levels)
    unknown = [level for level in levels if level not in LEVELS]
    if unknown or not levels:
        raise ValueError(f"levels must be among {LEVELS}; received {levels}")
    network = registry.get_model(
        name, weights=weights, include_top=False, input_shape=input_shape, **arguments
    )
    layers = pyramid_layer_names(name, [layer.name for layer in network.layers])
    missing = [level for level in levels if level not in layers]
    if missing:
        raise ValueError(
            f"{name} has no pyramid level {', '.join(missing)} (it has {list(layers)})"
        )
    outputs = {level: network.get_layer(layers[level]).output for level in levels}
    return keras.Model(network.inputs, outputs, name=f"{name}_pyramid")
