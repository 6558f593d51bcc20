"""Upstream checkpoints (official ECA-Net ``.pth.tar``, timm safetensors) -> Keras weights.

Readers need no torch: PyTorch pickles go through a restricted unpickler
(:mod:`eca_keras.convert.torch_checkpoint`), safetensors through the ``safetensors`` numpy API.
"""

from eca_keras.convert.state_dict import (
    ConversionReport,
    WeightMismatchError,
    apply_checkpoint,
    apply_state_dict,
    read_checkpoint,
)
from eca_keras.convert.torch_checkpoint import (
    CheckpointFormatError,
    UnsafeCheckpointError,
    load_torch_checkpoint,
    read_state_dict,
)

__all__ = [
    "CheckpointFormatError",
    "ConversionReport",
    "UnsafeCheckpointError",
    "WeightMismatchError",
    "apply_checkpoint",
    "apply_state_dict",
    "load_torch_checkpoint",
    "read_checkpoint",
    "read_state_dict",
]
