"""ECA-ResNet checkpoints: Keras layer name -> upstream (PyTorch) module name.

The Keras names are the documented contract of ``eca_keras.applications.resnet``; the upstream
names are those of the official ECA-Net release (``layerN.i.eca.conv``) and of timm's ResNet
(``layerN.i.se.conv``, deep stem ``conv1.{0,1,3,4,6}``, avg-down ``downsample.{1,2}``). Which
layout a checkpoint uses is read off its keys, so one map serves both.
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


def upstream_names(layer_names, state_keys):
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


def matches(state_keys):
    """Whether a checkpoint's keys are a ResNet's (official or timm layout)."""
    return any(key.startswith("layer1.") for key in state_keys)
