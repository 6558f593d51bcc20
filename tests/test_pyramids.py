"""Feature pyramids of every official and timm model against PyTorch, from the same converted
weights: every level ``P1``..``P5`` (Pn at stride 2^n, the last block of each stage) of
``eca_keras.applications.features.feature_pyramid`` has the shape and, within float32 noise, the
values of the PyTorch reference's stage outputs (official models) or of timm's own
``features_only`` model (timm's models).

Random weights and BatchNorm statistics, saved as upstream publishes them, converted; an odd input
size (67 px) exercises the symmetric padding and the ceil-mode pooling at every level.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
features = pytest.importorskip("eca_keras.applications.features")

from eca_keras.applications.weights import convert_checkpoint  # noqa: E402
from eca_keras.testing import checkpoints  # noqa: E402
from eca_keras.testing import torch_reference as ref  # noqa: E402

SIZE = 67
LEVELS = ("P1", "P2", "P3", "P4", "P5")
OFFICIAL_DEPTHS = {"eca_resnet18": 18, "eca_resnet34": 34, "eca_resnet50": 50,
                   "eca_resnet101": 101, "eca_resnet152": 152}  # fmt: skip
TIMM = ["ecaresnet26t", "ecaresnet50d", "ecaresnet50t", "ecaresnetlight", "ecaresnet101d",
        "ecaresnet269d"]  # fmt: skip
MOBILENET_V2_LEVELS = (1, 3, 6, 13, 17)  # features.N whose output is P1..P5 (torchvision's N)


def official_resnet_levels(model, x):
    stem = model.relu(model.bn1(model.conv1(x)))
    levels, y = [stem], model.maxpool(stem)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        y = stage(y)
        levels.append(y)
    return levels


def mobilenet_v2_levels(model, x):
    levels = []
    for index, block in enumerate(model.features[: MOBILENET_V2_LEVELS[-1] + 1]):
        x = block(x)
        if index in MOBILENET_V2_LEVELS:
            levels.append(x)
    return levels


def pytorch_levels(name, torch_model, x):
    """The five stage outputs, NHWC: timm's features_only for timm's models (loaded with the
    reference model's state dict), the reference's own stages for the official ones."""
    if name in TIMM:
        import timm

        timm_model = timm.create_model(name, features_only=True, out_indices=(0, 1, 2, 3, 4))
        missing, unexpected = timm_model.load_state_dict(torch_model.state_dict(), strict=False)
        assert not missing and set(unexpected) == {"fc.weight", "fc.bias"}
        outputs = timm_model.eval()(x)
    elif name == "eca_mobilenet_v2":
        outputs = mobilenet_v2_levels(torch_model, x)
    else:
        outputs = official_resnet_levels(torch_model, x)
    return [output.numpy().transpose(0, 2, 3, 1) for output in outputs]


def reference_model(name):
    if name in OFFICIAL_DEPTHS:
        return ref.official_resnet(OFFICIAL_DEPTHS[name])
    if name == "eca_mobilenet_v2":
        return ref.official_mobilenet_v2()
    return ref.timm_ecaresnet(name)


@pytest.mark.parametrize("name", [*OFFICIAL_DEPTHS, "eca_mobilenet_v2", *TIMM])
def test_pyramid_matches_pytorch(name, tmp_path):
    torch.manual_seed(0)
    torch_model = ref.randomize_(reference_model(name), seed=1)
    if name in TIMM:
        checkpoint = tmp_path / f"{name}.safetensors"
        checkpoints.save_timm_safetensors(torch_model, checkpoint)
    else:
        checkpoint = tmp_path / f"{name}.pth.tar"
        checkpoints.save_release_checkpoint(torch_model, checkpoint, arch=name)
    converted = tmp_path / f"{name}.weights.h5"
    convert_checkpoint(name, checkpoint, converted)

    images = np.random.default_rng(2).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    with torch.no_grad():
        expected = pytorch_levels(name, torch_model, torch.from_numpy(images.transpose(0, 3, 1, 2)))
    pyramid = features.feature_pyramid(
        name, weights=str(converted), levels=LEVELS, input_shape=(SIZE, SIZE, 3)
    )
    got = pyramid(images)
    assert sorted(got) == list(LEVELS)
    for level, reference in zip(LEVELS, expected, strict=True):
        level_output = np.asarray(got[level])
        assert level_output.shape == reference.shape, level
        error = np.abs(level_output - reference).max() / np.abs(reference).max()
        assert error <= 1e-4, f"{name} {level}: relative error {error:.2e}"


def test_a_level_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="P6"):
        features.feature_pyramid("eca_resnet18", levels=("P3", "P6"), input_shape=(64, 64, 3))
