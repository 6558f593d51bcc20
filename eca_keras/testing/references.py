"""The PyTorch model a registered model is checked (and benchmarked) against, by its registry row.

``reference="official"``: the independent re-implementation of the official ECA-Net code in
:mod:`~eca_keras.testing.torch_reference` (the official code is not a package);
``reference="timm"``: timm's own model, ``timm.create_model(name)``. Test tooling; needs torch
(and timm for timm's models).
"""

from eca_keras.applications import registry
from eca_keras.testing import checkpoints, torch_reference


def reference_model(name, attention=True, num_classes=1000):
    """The PyTorch twin of registered model ``name`` (random weights, train mode)."""
    info = registry.model_info(name)
    if info.reference == "official":
        if info.family == "mobilenet_v2":
            model = torch_reference.official_mobilenet_v2(num_classes)
        else:
            depth = int(name.removeprefix("eca_resnet"))
            model = torch_reference.official_resnet(depth, num_classes=num_classes)
        if not attention:
            torch_reference.without_attention(model)
        return model
    if info.reference == "timm":
        import timm

        twin = {}
        if not attention:
            if info.family not in ("nfnet", "byob"):
                raise ValueError(f"timm has no plain twin of {name}")
            twin = {"attn_layer": ""}  # the same network without ECA (timm drops None kwargs)
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **twin)
    raise ValueError(f"{name} has no PyTorch reference")


def randomize(model, seed=0):
    """Random weights and BatchNorm statistics (:func:`torch_reference.randomize_`), the last
    BatchNorm of each residual branch scaled down, timm's blocks included (their last BatchNorm
    is the one ``zero_init_last`` zeroes), so that deep networks keep activations O(1)."""
    last = []
    for module in model.modules():
        if hasattr(module, "last_bn") and callable(module.last_bn):
            last.append(module.last_bn())
        elif hasattr(module, "zero_init_last"):
            bn = getattr(module, "bn3", None) or getattr(module, "bn2", None)
            if bn is not None:
                last.append(bn)
    return torch_reference.randomize_(model, seed=seed, last_bns=[bn for bn in last if bn])


def has_reference(name):
    return registry.model_info(name).reference in ("official", "timm")


def save_checkpoint(name, model, path, legacy=False):
    """Saves ``model`` as ``name``'s upstream publishes it: the release's ``.pth.tar`` or timm's
    safetensors; returns the path."""
    if registry.model_info(name).reference == "official":
        checkpoints.save_release_checkpoint(model, path, arch=name, legacy=legacy)
    else:
        checkpoints.save_timm_safetensors(model, path)
    return path
