"""Converted weights compute what the PyTorch models compute (logits and features).

PyTorch reference models (eca_keras/torch_reference.py, written independently of the Keras code)
get random weights and BatchNorm statistics, are saved the way upstream publishes them (the
official release's wrapped ``module.`` state dict, one in the legacy pre-1.6 format; timm's
safetensors), converted, and compared in inference mode on an odd input size (67 px) that
exercises the symmetric padding and the ceil-mode average pooling.
"""

import subprocess
import sys

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eca_keras.applications import get_model  # noqa: E402
from eca_keras.applications.weights import convert_checkpoint  # noqa: E402
from eca_keras.testing import checkpoints  # noqa: E402
from eca_keras.testing import torch_reference as ref  # noqa: E402

SIZE = 67
OFFICIAL_DEPTHS = {"eca_resnet18": 18, "eca_resnet34": 34, "eca_resnet50": 50,
                   "eca_resnet101": 101, "eca_resnet152": 152}  # fmt: skip
TIMM = ["ecaresnet26t", "ecaresnet50d", "ecaresnet50t", "ecaresnetlight", "ecaresnet101d",
        "ecaresnet269d"]  # fmt: skip
SMALL = {"eca_resnet18", "eca_mobilenet_v2", "ecaresnet26t", "ecaresnet50d"}
LEGACY_FORMAT = {"eca_resnet50", "eca_mobilenet_v2"}  # saved like the 2019 release files


def reference_model(name):
    if name in OFFICIAL_DEPTHS:
        return ref.official_resnet(OFFICIAL_DEPTHS[name])
    if name == "eca_mobilenet_v2":
        return ref.official_mobilenet_v2()
    return ref.timm_ecaresnet(name)


def save_upstream(model, name, folder):
    if name in TIMM:
        path = folder / f"{name}.safetensors"
        checkpoints.save_timm_safetensors(model, path)
    else:
        path = folder / f"{name}.pth.tar"
        checkpoints.save_release_checkpoint(model, path, arch=name, legacy=name in LEGACY_FORMAT)
    return path


def relative_error(got, expected):
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("name", [*OFFICIAL_DEPTHS, "eca_mobilenet_v2", *TIMM])
def test_converted_weights_match_pytorch(name, tmp_path):
    torch.manual_seed(0)
    torch_model = ref.randomize_(reference_model(name), seed=1)
    checkpoint = save_upstream(torch_model, name, tmp_path)
    output = tmp_path / f"{name}.weights.h5"
    convert_checkpoint(name, checkpoint, output)

    images = np.random.default_rng(2).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    nchw = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        expected_logits = torch_model(nchw).numpy()
        expected_features = torch_model.forward_features(nchw).numpy().transpose(0, 2, 3, 1)

    # Eager calls: tracing a predict function costs more than the comparison (12 s for 269d).
    shape = (SIZE, SIZE, 3)
    model = get_model(name, weights=str(output), input_shape=shape, classifier_activation=None)
    assert relative_error(np.asarray(model(images)), expected_logits) <= 1e-4
    if name in SMALL:  # include_top=False loading the same file (deep models: the same graph)
        backbone = get_model(name, weights=str(output), input_shape=shape, include_top=False)
    else:
        backbone = keras.Model(model.input, model.get_layer("avg_pool").input)
    assert relative_error(np.asarray(backbone(images)), expected_features) <= 1e-4


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
