"""A model is one row in one file: a toy variant registered from this test file is found by
get_model, list_models, `eca-keras models`, the weights machinery and the preset names."""

import numpy as np
import pytest
import torch

from eca_keras import cli
from eca_keras.applications import get_model, list_models, model_info, registry
from eca_keras.applications.resnet import RESNET_VARIANTS, ResNetVariant, register_resnet
from eca_keras.preprocessing import EvalConfig
from eca_keras.testing import checkpoints
from eca_keras.testing import torch_reference as ref

NAME = "toy_resnet10"


@pytest.fixture
def toy(tmp_path):
    """The toy's row, with a checkpoint of the official layout "hosted" in a mirror folder."""
    torch_model = ref.randomize_(ref.ResNet((1, 1, 1, 1), False, (3, 3, 3, 3)), seed=9)
    entry = registry.WeightEntry(
        NAME,
        "official",
        "toy_resnet10.pth.tar",
        "https://example.invalid/toy_resnet10.pth.tar",
        "official_pth",
        [(64, 1.0, 12.5, 34.5)],
        EvalConfig(64, 1.0),
    )
    constructor = register_resnet(
        NAME,
        "ToyResNet10",
        ResNetVariant("basic", (1, 1, 1, 1), (3, 3, 3, 3)),
        params=ref.count_params(torch_model),
        default_size=64,
        summary="A toy for the registry test.",
        weights=[entry],
        origin="official",
    )
    hosted = tmp_path / "mirror"
    hosted.mkdir()
    checkpoints.save_release_checkpoint(torch_model, hosted / entry.file_name, arch=NAME)
    yield constructor, torch_model, hosted
    registry.unregister(NAME)
    RESNET_VARIANTS.pop(NAME)


def test_a_row_registered_elsewhere_is_found_everywhere(toy, tmp_path, monkeypatch, capsys):
    constructor, torch_model, hosted = toy
    assert NAME in list_models() and model_info(NAME).constructor is constructor
    assert constructor.__name__ == "ToyResNet10" and "A toy" in constructor.__doc__
    model = get_model(NAME, weights=None)
    assert model.count_params() > 0 and model.input_shape == (None, 64, 64, 3)

    assert cli.main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(NAME))
    assert f"{model_info(NAME).params:,}" in row and f"{NAME}.official" in row and "12.50" in row

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("ECA_KERAS_WEIGHTS_MIRROR", str(hosted))
    pretrained = get_model(NAME, weights="imagenet", classifier_activation=None)
    images = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    got = pretrained.predict(images, verbose=0)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()

    from eca_keras.hub import preset_names

    assert preset_names()[f"{NAME}_imagenet"].model == NAME


def test_a_second_row_with_the_same_name_is_refused(toy):
    original = RESNET_VARIANTS[NAME]
    with pytest.raises(ValueError, match="registered already"):
        register_resnet(
            NAME,
            "Again",
            ResNetVariant("basic", (1, 1, 1, 1), (3, 3, 3, 3)),
            params=1,
            summary="",
            origin="official",
        )
    assert RESNET_VARIANTS[NAME] is original
