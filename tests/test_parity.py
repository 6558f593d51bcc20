"""Converted weights compute what the PyTorch models compute (logits and features).

The official models are checked against the independent PyTorch re-implementation of the
official code (eca_keras/testing/torch_reference.py: the official code is not a package); timm's
against timm itself. Each gets random weights and BatchNorm statistics, is saved the way upstream
publishes it (the official release's wrapped ``module.`` state dict, one in the legacy pre-1.6
format; timm's safetensors), converted, and compared in inference mode with the PyTorch model run
in float64 on an odd input size (67 px) that exercises the symmetric padding and the ceil-mode
average pooling.
"""

import subprocess
import sys

import keras
import numpy as np
import pytest
from torch_or_skip import import_torch

torch = import_torch()

from eca_keras.applications import get_model, list_models, model_info  # noqa: E402
from eca_keras.applications.weights import convert_checkpoint  # noqa: E402
from eca_keras.testing import references  # noqa: E402
from eca_keras.testing import torch_reference as ref  # noqa: E402

SIZE = 67
SMALL = {"eca_resnet18", "eca_mobilenet_v2", "ecaresnet26t", "ecaresnet50d"}
LEGACY_FORMAT = {"eca_resnet50", "eca_mobilenet_v2"}  # saved like the 2019 release files
RESNETS = [name for name in list_models() if model_info(name).family in ("resnet", "mobilenet_v2")]
# Also compared compiled by XLA, where every ECA takes the descriptor pooled before the block's
# last BatchNorm (inverted residuals; bottlenecks, with the narrower path of stages 2-3).
UNDER_XLA = {"eca_mobilenet_v2", "ecaresnet26t"}


def save_upstream(model, name, folder):
    suffix = ".pth.tar" if model_info(name).origin == "official" else ".safetensors"
    path = folder / f"{name}{suffix}"
    return references.save_checkpoint(name, model, path, legacy=name in LEGACY_FORMAT)


def relative_error(got, expected):
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("name", RESNETS)
def test_converted_weights_match_pytorch(name, tmp_path):
    torch.manual_seed(0)
    torch_model = references.randomize(references.reference_model(name), seed=1)
    checkpoint = save_upstream(torch_model, name, tmp_path)
    output = tmp_path / f"{name}.weights.h5"
    convert_checkpoint(name, checkpoint, output)

    images = np.random.default_rng(2).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    nchw = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).double()
    reference = torch_model.double()
    with torch.no_grad():
        expected_logits = reference(nchw).numpy()
        expected_features = reference.forward_features(nchw).numpy().transpose(0, 2, 3, 1)

    # Eager calls: tracing a predict function costs more than the comparison (12 s for 269d).
    shape = (SIZE, SIZE, 3)
    model = get_model(name, weights=str(output), input_shape=shape, classifier_activation=None)
    assert relative_error(np.asarray(model(images)), expected_logits) <= 1e-4
    if name in SMALL:  # include_top=False loading the same file (deep models: the same graph)
        backbone = get_model(name, weights=str(output), input_shape=shape, include_top=False)
    else:
        backbone = keras.Model(model.input, model.get_layer("avg_pool").input)
    assert relative_error(np.asarray(backbone(images)), expected_features) <= 1e-4
    if name in UNDER_XLA and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
        assert relative_error(compiled(images).numpy(), expected_logits) <= 1e-4


@pytest.mark.parametrize("name", [name for name in RESNETS if model_info(name).reference == "timm"])
def test_parameter_counts_equal_timms(name):
    import timm

    model = timm.create_model(name, pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == model_info(name).params


def test_cli_convert_and_checkpoint_as_weights(tmp_path):
    """`eca-keras convert` writes a loadable file and prints its sha256; an upstream file is also
    accepted directly as ``weights=``."""
    torch_model = ref.randomize_(ref.official_resnet(18), seed=3)
    checkpoint = save_upstream(torch_model, "eca_resnet18", tmp_path)
    output = tmp_path / "r18.weights.h5"
    result = subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", "convert", "--model", "eca_resnet18",
         "--checkpoint", str(checkpoint), "--output", str(output)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    import hashlib

    assert hashlib.sha256(output.read_bytes()).hexdigest() in result.stdout
    images = np.random.default_rng(4).normal(size=(1, SIZE, SIZE, 3)).astype("float32")
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    for weights in (output, checkpoint):
        model = get_model("eca_resnet18", weights=str(weights), input_shape=(SIZE, SIZE, 3),
                          classifier_activation=None)  # fmt: skip
        assert relative_error(model.predict(images, verbose=0), expected) <= 1e-4


@pytest.mark.parametrize("alpha", [0.5, 1.4])
def test_mobilenet_v2_width_multiplier_matches_torchvision(alpha):
    """``alpha != 1`` (no released weights): the plain twin against torchvision's
    ``mobilenet_v2(width_mult=alpha)``, parameter for parameter (copied in order) and logits."""
    import torchvision

    from eca_keras.applications import ECAMobileNetV2

    reference = ref.randomize_(torchvision.models.mobilenet_v2(width_mult=alpha), seed=4)
    model = ECAMobileNetV2(weights=None, alpha=alpha, attention=False, input_shape=(64, 64, 3),
                           classifier_activation=None)  # fmt: skip
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == sum(p.numel() for p in reference.parameters())
    by_kind = {kind: [] for kind in ("conv", "bn", "dense")}
    for module in reference.modules():
        kind = {torch.nn.Conv2d: "conv", torch.nn.BatchNorm2d: "bn", torch.nn.Linear: "dense"}
        if type(module) in kind:
            by_kind[kind[type(module)]].append(module)
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            weight = by_kind["conv"].pop(0).weight.detach().numpy()
            layer.set_weights([weight.transpose(2, 3, 0, 1)])
        elif isinstance(layer, keras.layers.Conv2D):
            layer.set_weights(
                [by_kind["conv"].pop(0).weight.detach().numpy().transpose(2, 3, 1, 0)]
            )
        elif isinstance(layer, keras.layers.BatchNormalization):
            bn = by_kind["bn"].pop(0)
            layer.set_weights([t.detach().numpy() for t in (bn.weight, bn.bias, bn.running_mean,
                                                              bn.running_var)])  # fmt: skip
        elif isinstance(layer, keras.layers.Dense):
            dense = by_kind["dense"].pop(0)
            layer.set_weights([dense.weight.detach().numpy().T, dense.bias.detach().numpy()])
    assert by_kind == {"conv": [], "bn": [], "dense": []}  # every module found its layer
    images = np.random.default_rng(5).normal(size=(2, 64, 64, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    assert relative_error(np.asarray(model(images)), expected) <= 1e-4
