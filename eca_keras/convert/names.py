"""Keras layer name -> upstream (PyTorch) module name, for every family this package builds.

The Keras names are the documented contract of ``eca_keras.applications``; the upstream names are
those of the official ECA-Net release (``layerN.i.eca.conv``, ``features.N.conv.M``) and of timm's
ResNet (``layerN.i.se.conv``, deep stem ``conv1.{0,1,3,4,6}``, avg-down ``downsample.{1,2}``).
Which layout a checkpoint uses is read off its keys, so one map serves all of them.
"""

import re

_DEEP_STEM = {
    "conv1_1_conv": "conv1.0",
    "conv1_1_bn": "conv1.1",
    "conv1_2_conv": "conv1.3",
    "conv1_2_bn": "conv1.4",
    "conv1_3_conv": "conv1.6",
}
_RESNET_BLOCK = re.compile(r"conv(\d)_block(\d+)_(?:(\d)_(conv|bn)|(eca))$")
_MOBILENET_BLOCK = re.compile(r"block(\d+)_(?:(expand|dw|project)_(conv|bn)|(eca))$")


def resnet_names(layer_names, state_keys):
    """Maps ECA-ResNet layer names onto official or timm ResNet module names."""
    attention = "eca" if any(key.endswith(".eca.conv.weight") for key in state_keys) else "se"
    # timm's avg-down shortcut is (pool, conv, bn): the conv sits one index later.
    offset = 1 if any(key.endswith(".downsample.2.weight") for key in state_keys) else 0
    mapping = {}
    for name in layer_names:
        if name in _DEEP_STEM:
            mapping[name] = _DEEP_STEM[name]
        elif name in ("conv1_conv", "conv1_bn", "predictions"):
            mapping[name] = {"conv1_conv": "conv1", "conv1_bn": "bn1", "predictions": "fc"}[name]
        elif match := _RESNET_BLOCK.match(name):
            stage, block, index, kind, eca = match.groups()
            prefix = f"layer{int(stage) - 1}.{int(block) - 1}"
            if eca:
                mapping[name] = f"{prefix}.{attention}.conv"
            elif index == "0":
                mapping[name] = f"{prefix}.downsample.{offset + (kind == 'bn')}"
            else:
                mapping[name] = f"{prefix}.{kind}{index}"
    return mapping


def mobilenet_v2_names(layer_names, state_keys=()):
    """Maps ECA-MobileNetV2 layer names onto torchvision-layout ``features.N`` names."""
    layer_names = list(layer_names)
    expanded = {
        int(m.group(1))
        for n in layer_names
        if (m := _MOBILENET_BLOCK.match(n)) and m.group(2) == "expand"
    }
    blocks = [int(m.group(1)) for n in layer_names if (m := _MOBILENET_BLOCK.match(n))]
    last = max(blocks, default=0) + 1
    fixed = {
        "conv1_conv": "features.0.0",
        "conv1_bn": "features.0.1",
        "top_conv": f"features.{last}.0",
        "top_bn": f"features.{last}.1",
        "predictions": "classifier.1",
    }
    mapping = {}
    for name in layer_names:
        if name in fixed:
            mapping[name] = fixed[name]
        elif match := _MOBILENET_BLOCK.match(name):
            block, part, kind, eca = match.groups()
            shift = 1 if int(block) in expanded else 0  # the expand conv is conv.0
            prefix = f"features.{block}.conv"
            if eca:
                mapping[name] = f"{prefix}.{shift + 3}.conv"
            elif part == "expand":
                mapping[name] = f"{prefix}.0.{int(kind == 'bn')}"
            elif part == "dw":
                mapping[name] = f"{prefix}.{shift}.{int(kind == 'bn')}"
            else:  # project: a bare conv, then its BatchNorm
                mapping[name] = f"{prefix}.{shift + 1 + (kind == 'bn')}"
    return mapping


def upstream_names(layer_names, state_keys):
    """Picks the family from the checkpoint's keys and maps every Keras layer name."""
    state_keys = list(state_keys)
    if any(key.startswith("features.") for key in state_keys):
        return mobilenet_v2_names(layer_names, state_keys)
    return resnet_names(layer_names, state_keys)
