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
from torch_or_skip import import_torch

torch = import_torch()

from eca_keras.applications import features, list_models, model_info  # noqa: E402
from eca_keras.applications.weights import convert_checkpoint  # noqa: E402
from eca_keras.testing import references  # noqa: E402

SIZE = 67
LEVELS = ("P1", "P2", "P3", "P4", "P5")
MOBILENET_V2_LEVELS = (1, 3, 6, 13, 17)  # features.N whose output is P1..P5 (torchvision's N)
MODELS = [
    pytest.param(name, marks=pytest.mark.slow)
    if name in ("eca_nfnet_l2", "ecaresnet269d")
    else name
    for name in list_models()
    if references.has_reference(name)
]
# The hybrids run at 256 only (bottleneck attention's embeddings; halo blocks need 8 | H/32).
FIXED_SIZE = {"eca_botnext26ts_256": 256, "eca_halonext26ts": 256}


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
    """The five stage outputs, NHWC: timm's ``forward_intermediates`` (what its ``features_only``
    returns) for timm's models, the reference's own stages for the official ones."""
    if model_info(name).reference == "timm":  # timm's own intermediates (its features_only)
        outputs = torch_model.eval().forward_intermediates(x, indices=5, intermediates_only=True)
    elif name == "eca_mobilenet_v2":
        outputs = mobilenet_v2_levels(torch_model, x)
    else:
        outputs = official_resnet_levels(torch_model, x)
    return [output.numpy().transpose(0, 2, 3, 1) for output in outputs]


@pytest.mark.parametrize("name", MODELS)
def test_pyramid_matches_pytorch(name, tmp_path):
    torch.manual_seed(0)
    torch_model = references.randomize(references.reference_model(name), seed=1)
    suffix = ".pth.tar" if model_info(name).reference == "official" else ".safetensors"
    checkpoint = references.save_checkpoint(name, torch_model, tmp_path / f"{name}{suffix}")
    converted = tmp_path / f"{name}.weights.h5"
    convert_checkpoint(name, checkpoint, converted)

    size = FIXED_SIZE.get(name, SIZE)
    images = np.random.default_rng(2).normal(size=(2, size, size, 3)).astype("float32")
    with torch.no_grad():
        expected = pytorch_levels(name, torch_model, torch.from_numpy(images.transpose(0, 3, 1, 2)))
    pyramid = features.feature_pyramid(
        name, weights=str(converted), levels=LEVELS, input_shape=(size, size, 3)
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
