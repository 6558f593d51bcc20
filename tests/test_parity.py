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
import torch

from eca_keras.applications import get_model, list_models, model_info
from eca_keras.applications.weights import convert_checkpoint
from eca_keras.testing import references
from eca_keras.testing import torch_reference as ref

SIZE = 67
SMALL = {"eca_resnet18", "eca_mobilenet_v2", "ecaresnet26t", "ecaresnet50d"}
LEGACY_FORMAT = {"eca_resnet50", "eca_mobilenet_v2"}  # saved like the 2019 release files
RESNETS = [name for name in list_models() if model_info(name).family in ("resnet", "mobilenet_v2")]


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
