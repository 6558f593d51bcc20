"""Sanity tests for the PyTorch re-implementation of the official code
(``eca_keras.testing.torch_reference``) and the checkpoint writers."""

from collections import OrderedDict

import pytest
from torch_or_skip import import_torch

torch = import_torch()

from eca_keras.testing import checkpoints  # noqa: E402
from eca_keras.testing import torch_reference as ref  # noqa: E402

PARAM_COUNTS = {
    ("official", 18): 11_689_556,
    ("official", 34): 21_797_744,
    ("official", 50): 25_557_112,
    ("official", 101): 44_549_317,
    ("official", 152): 60_193_042,
    ("official", "mobilenet_v2"): 3_504_903,
}


def build(family, name, **kw):
    if name == "mobilenet_v2":
        return ref.official_mobilenet_v2(**kw)
    return ref.official_resnet(name, **kw)


@pytest.mark.parametrize("family,name", list(PARAM_COUNTS), ids=lambda v: str(v))
def test_param_counts(family, name):
    assert ref.count_params(build(family, name)) == PARAM_COUNTS[(family, name)]


@pytest.mark.parametrize(
    "family,name,feat",
    [
        ("official", 18, (2, 512, 2, 2)),
        ("official", "mobilenet_v2", (2, 1280, 2, 2)),
    ],
)
def test_forward_shapes(family, name, feat):
    model = ref.randomize_(build(family, name, num_classes=10), seed=1)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f, y = model.forward_features(x), model(x)
    assert tuple(f.shape) == feat
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all() and 0.01 < y.std() < 100


def test_randomize_is_seeded_and_eval():
    a = ref.randomize_(ref.official_resnet(18), seed=3)
    b = ref.randomize_(ref.official_resnet(18), seed=3)
    c = ref.randomize_(ref.official_resnet(18), seed=4)
    assert not a.training
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layer1.0.eca.conv.weight"], sc["layer1.0.eca.conv.weight"])
    assert (sa["bn1.running_var"] > 0).all()
    assert not torch.equal(sa["bn1.running_mean"], torch.zeros(64))
    assert sa["layer1.0.bn2.weight"].max() < 0.5 <= sa["layer1.0.bn1.weight"].min()  # residual end
    mb = ref.randomize_(ref.official_mobilenet_v2(), seed=3).state_dict()
    assert mb["features.3.conv.3.weight"].max() < 0.5 <= mb["features.2.conv.3.weight"].min()


def test_official_resnet_keys():
    sd = ref.official_resnet(50).state_dict()
    assert sd["layer1.0.eca.conv.weight"].shape == (1, 1, 3)
    assert sd["layer2.0.eca.conv.weight"].shape == (1, 1, 5)
    assert sd["layer4.2.eca.conv.weight"].shape == (1, 1, 7)
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer2.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    assert "layer2.0.downsample.1.running_var" in sd
    assert "layer2.1.downsample.0.weight" not in sd
    assert sd["fc.weight"].shape == (1000, 2048)
    sd18 = ref.official_resnet(18).state_dict()
    assert "layer1.0.downsample.0.weight" not in sd18
    assert sd18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd18["layer3.1.eca.conv.weight"].shape == (1, 1, 7)


def test_official_mobilenet_v2_keys():
    sd = ref.official_mobilenet_v2().state_dict()
    assert sd["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert "features.0.1.running_mean" in sd
    assert sd["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)
    assert sd["features.1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert "features.1.conv.2.running_var" in sd
    assert sd["features.1.conv.3.conv.weight"].shape == (1, 1, 1)
    assert sd["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)
    assert sd["features.2.conv.1.0.weight"].shape == (96, 1, 3, 3)
    assert sd["features.2.conv.2.weight"].shape == (24, 96, 1, 1)
    assert sd["features.2.conv.4.conv.weight"].shape == (1, 1, 1)
    assert sd["features.14.conv.4.conv.weight"].shape == (1, 1, 3)
    assert sd["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert sd["classifier.1.weight"].shape == (1000, 1280)


@pytest.mark.parametrize("legacy", [False, True])
def test_release_checkpoint_roundtrip(tmp_path, legacy):
    model = ref.randomize_(ref.official_resnet(18), seed=5)
    path = tmp_path / "ckpt.pth.tar"
    checkpoints.save_release_checkpoint(model, path, "eca_resnet18", legacy=legacy)
    with open(path, "rb") as f:
        assert (f.read(2) == b"PK") is not legacy
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 100 and ckpt["arch"] == "eca_resnet18"
    assert float(ckpt["best_prec1"]) == 70.0 and "optimizer" in ckpt
    sd = ckpt["state_dict"]
    assert isinstance(sd, OrderedDict)
    assert all(k.startswith("module.") for k in sd)
    ref_sd = model.state_dict()
    assert list(sd) == ["module." + k for k in ref_sd]
    assert all(torch.equal(sd["module." + k], v) for k, v in ref_sd.items())
    fresh = ref.official_resnet(18)
    fresh.load_state_dict({k[len("module.") :]: v for k, v in sd.items()})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), model(x))


def test_save_timm_safetensors(tmp_path):
    safetensors_torch = import_torch("safetensors.torch")
    timm = import_torch("timm")

    model = ref.randomize_(timm.create_model("ecaresnet26t"), seed=6)
    path = tmp_path / "model.safetensors"
    checkpoints.save_timm_safetensors(model, path)
    loaded = safetensors_torch.load_file(str(path))
    sd = model.state_dict()
    assert set(loaded) == set(sd)
    assert "bn1.num_batches_tracked" in loaded
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())
