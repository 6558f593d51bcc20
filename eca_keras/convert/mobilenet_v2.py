"""ECA-MobileNetV2 checkpoints: Keras layer name -> torchvision-layout ``features.N`` names."""

import re

_MOBILENET_BLOCK = re.compile(r"block(\d+)_(?:(expand|dw|project)_(conv|bn)|(eca))$")


def matches(state_keys):
    """Whether a checkpoint's keys are a torchvision-layout MobileNetV2's."""
    return any(key.startswith("features.") for key in state_keys)


def upstream_names(layer_names, state_keys=()):
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
