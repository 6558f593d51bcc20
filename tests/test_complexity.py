"""MACs counted from Keras layers against PyTorch's FlopCounterMode on the reference models."""

import pytest
from torch_or_skip import import_torch

torch = import_torch()

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from eca_keras.applications import get_model  # noqa: E402
from eca_keras.complexity import count_macs  # noqa: E402
from eca_keras.testing import references  # noqa: E402


def torch_macs(module, size):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.eval()(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() // 2  # two FLOPs per multiply-accumulate


@pytest.mark.parametrize(
    "name",
    [
        "eca_resnet18",
        "eca_resnet50",
        "eca_mobilenet_v2",
        "ecaresnet26t",
        "ecaresnet50d_pruned",
        "eca_nfnet_l0",
    ],
)
def test_macs_match_pytorch(name):
    """The official re-implementation and timm's own models, counted by FlopCounterMode."""
    keras_model = get_model(name, weights=None, input_shape=(224, 224, 3))
    assert count_macs(keras_model) == torch_macs(references.reference_model(name), 224)


def test_eca_costs_a_few_thousand_macs():
    """ResNet-50's well-known 4,089,184,256 MACs; ECA adds C * k per block: 86,272 (2e-5).

    (The paper's table lists 3.86 "GFLOPs" for both; this count is 3.81 x 2^30. The 55M gap is
    about the size of the element-wise work, which the paper's counter presumably included.)"""
    eca = count_macs(get_model("eca_resnet50", weights=None))
    plain = count_macs(get_model("eca_resnet50", weights=None, attention=False))
    assert plain == 4_089_184_256
    assert eca - plain == 256 * 3 * 3 + 512 * 4 * 5 + 1024 * 6 * 5 + 2048 * 3 * 7 == 86_272


def test_macs_match_timm_with_halo_attention():
    """Grouped convolutions, ECA on the middle width, and halo attention's projections and
    matrix products, against FlopCounterMode on timm's own eca_halonext26ts (at 256 px, its
    smallest size; bottleneck attention: tests/test_byob_layers.py)."""
    timm = import_torch("timm")
    keras_model = get_model("eca_halonext26ts", weights=None)
    assert count_macs(keras_model) == torch_macs(timm.create_model("eca_halonext26ts"), 256)
