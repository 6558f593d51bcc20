"""Writing PyTorch models as upstream publishes them: the official release's wrapped ``.pth.tar``
(zip or legacy format) and timm's safetensors. Test tooling; needs torch."""

from collections import OrderedDict

import torch
from torch import nn


def save_release_checkpoint(
    model: nn.Module, path, arch: str, legacy: bool = False, num_batches_tracked: bool = True
) -> dict:
    """Save ``model`` wrapped like the official ECA-Net release (DataParallel ``module.`` keys).

    ``legacy=True`` writes the pre-1.6 (non-zip) torch serialization. Returns the saved dict.
    """
    state = OrderedDict(
        ("module." + k, v.detach().clone())
        for k, v in model.state_dict().items()
        if num_batches_tracked or not k.endswith("num_batches_tracked")
    )
    n_params = len(list(model.parameters()))
    ckpt = {
        "epoch": 100,
        "arch": arch,
        "state_dict": state,
        "best_prec1": torch.tensor(70.0),
        "optimizer": {
            "state": {},
            "param_groups": [
                {
                    "lr": 0.0001,
                    "momentum": 0.9,
                    "dampening": 0,
                    "weight_decay": 0.0001,
                    "nesterov": False,
                    "params": list(range(n_params)),
                }
            ],
        },
    }
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return ckpt


def save_timm_safetensors(model: nn.Module, path) -> dict[str, torch.Tensor]:
    """Save ``model.state_dict()`` (incl. BN ``num_batches_tracked``) as a safetensors file."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(path))
    return tensors
