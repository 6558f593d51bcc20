"""MACs counted from Keras layers against PyTorch's FlopCounterMode on the reference models."""

import pytest
from torch_or_skip import import_torch

torch = import_torch()

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from eca_keras.applications import get_model  # noqa: E402
from eca_keras.complexity import count_macs  # noqa: E402
from eca_keras.testing import torch_reference  # noqa: E402


def torch_macs(module, size):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.eval()(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() // 2  # two FLOPs per multiply-accumulate


@pytest.mark.parametrize(
    "name,reference",
    [
        ("eca_resnet18", lambda: torch_reference.official_resnet(18)),
        ("eca_resnet50", lambda: torch_reference.official_resnet(50)),
        ("eca_mobilenet_v2", torch_reference.official_mobilenet_v2),
        ("ecaresnet26t", lambda: torch_reference.timm_ecaresnet("ecaresnet26t")),
    ],
)
def test_macs_match_pytorch(name, reference):
    keras_model = get_model(name, weights=None, input_shape=(224, 224, 3))
    assert count_macs(keras_model) == torch_macs(reference(), 224)


def test_eca_costs_a_few_thousand_macs():
    """ResNet-50's well-known 4,089,184,256 MACs; ECA adds C * k per block: 86,272 (2e-5).

    (The paper's table lists 3.86 "GFLOPs" for both; this count is 3.81 x 2^30. The 55M gap is
    about the size of the element-wise work, which the paper's counter presumably included.)"""
    eca = count_macs(get_model("eca_resnet50", weights=None))
    plain = count_macs(get_model("eca_resnet50", weights=None, attention=False))
    assert plain == 4_089_184_256
    assert eca - plain == 256 * 3 * 3 + 512 * 4 * 5 + 1024 * 6 * 5 + 2048 * 3 * 7 == 86_272
