"""ECA-NFNet checkpoints (timm's ``NormFreeNet``): Keras layer name -> timm module name.

The Keras names are the documented contract of ``eca_keras.applications.nfnet``: ``stem_convN``
is ``stem.convN``, ``stageS_blockB_<conv>`` is ``stages.{S-1}.{B-1}.<conv>`` (``downsample_conv``:
``downsample.conv``), ``stageS_blockB_eca`` is ``attn_last.conv``, ``predictions`` is ``head.fc``.
Each :class:`~eca_keras.layers.ScaledStdConv2D` holds timm's ``weight`` (OIHW -> HWIO), ``bias``
and ``gain`` (``[O, 1, 1, 1]`` -> ``[O]``).
"""

import re

from eca_keras.layers import ScaledStdConv2D

LAYOUTS = {
    ScaledStdConv2D: (
        ("weight", lambda w: w.transpose(2, 3, 1, 0)),
        ("bias", lambda b: b),
        ("gain", lambda g: g.reshape(-1)),
    ),
}
_BLOCK = re.compile(r"stage(\d)_block(\d+)_(conv1|conv2|conv2b|conv3|downsample_conv|eca)$")
_UPSTREAM_PART = {"downsample_conv": "downsample.conv", "eca": "attn_last.conv"}


def upstream_names(layer_names, state_keys):
    """Maps ECA-NFNet layer names onto timm's ``NormFreeNet`` module names."""
    mapping = {}
    for name in layer_names:
        if match := _BLOCK.match(name):
            stage, block, part = match.groups()
            mapping[name] = f"stages.{int(stage) - 1}.{int(block) - 1}." + _UPSTREAM_PART.get(
                part, part
            )
        elif name.startswith("stem_conv"):
            mapping[name] = "stem." + name.removeprefix("stem_")
        elif name in ("final_conv", "predictions"):
            mapping[name] = {"final_conv": "final_conv", "predictions": "head.fc"}[name]
    return mapping


def matches(state_keys):
    """Whether a checkpoint's keys are a timm NormFreeNet's (weight-standardised, with gains)."""
    return any(key.startswith("stages.") and key.endswith(".gain") for key in state_keys)
