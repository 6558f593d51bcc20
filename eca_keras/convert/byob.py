"""timm ByobNet checkpoints (eca_resnet33ts, eca_resnext26ts, eca_botnext26ts_256,
eca_halonext26ts): Keras layer name -> timm module name.

The Keras names are the documented contract of ``eca_keras.applications.byob``; the upstream
names are timm's ``ByobNet``: ``stem.conv{1,2,3}.{conv,bn}``,
``stages.{S-1}.{B-1}.{shortcut,conv1_1x1,conv2_kxk,conv3_1x1}.{conv,bn}``, ECA's
``stages.*.attn.conv``, the self-attention ``stages.*.self_attn`` and its ``post_attn`` BatchNorm,
``final_conv.{conv,bn}`` and ``head.fc``.
"""

import re

from eca_keras.layers import BottleneckAttention, HaloAttention


def _pointwise(weight):
    """A bias-free 1x1 ``Conv2d`` weight ``[out, in, 1, 1]`` -> an ``(in, out)`` projection."""
    return weight[:, :, 0, 0].T


def _same(array):
    return array


_RELATIVE = (("pos_embed.height_rel", _same), ("pos_embed.width_rel", _same))
LAYOUTS = {
    BottleneckAttention: (("qkv.weight", _pointwise), *_RELATIVE),
    HaloAttention: (("q.weight", _pointwise), ("kv.weight", _pointwise), *_RELATIVE),
}

_CONVS = {"0": "shortcut", "1": "conv1_1x1", "2": "conv2_kxk", "3": "conv3_1x1"}
_STEM = re.compile(r"stem_(\d)_(conv|bn)$")
_BLOCK = re.compile(r"stage(\d)_block(\d+)_(?:(\d)_(conv|bn)|(eca)|(attn)(_bn)?)$")
_FIXED = {
    "top_conv": "final_conv.conv",
    "top_bn": "final_conv.bn",
    "predictions": "head.fc",
}


def matches(state_keys):
    """Whether a checkpoint's keys are a timm ByobNet's (bottleneck blocks' ``conv1_1x1``)."""
    return any(".conv1_1x1." in key for key in state_keys)


def upstream_names(layer_names, state_keys=()):
    """Maps ByobNet layer names onto timm's module names."""
    mapping = {}
    for name in layer_names:
        if name in _FIXED:
            mapping[name] = _FIXED[name]
        elif match := _STEM.match(name):
            mapping[name] = f"stem.conv{match.group(1)}.{match.group(2)}"
        elif match := _BLOCK.match(name):
            stage, block, index, kind, eca, attn, post = match.groups()
            prefix = f"stages.{int(stage) - 1}.{int(block) - 1}"
            if eca:
                mapping[name] = f"{prefix}.attn.conv"
            elif attn:
                mapping[name] = f"{prefix}.post_attn" if post else f"{prefix}.self_attn"
            else:
                mapping[name] = f"{prefix}.{_CONVS[index]}.{kind}"
    return mapping
