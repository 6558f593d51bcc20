"""timm's ByobNet ECA models against timm itself: converted random checkpoints compute timm's
logits and features, parameter counts and ECA kernel sizes are timm's, the plain twin is timm's
ResNeXt26-TS; and the constructors' keras.applications behaviour and input-size rules."""

import copy

import keras
import numpy as np
import pytest
from torch_or_skip import import_torch

torch = import_torch()
timm = import_torch("timm")

from test_applications import BAD_ARGUMENTS  # noqa: E402

from eca_keras import ECA  # noqa: E402
from eca_keras.applications import (  # noqa: E402
    ECABotNeXt26TS,
    ECAHaloNeXt26TS,
    ECAResNeXt26TS,
    byob,
    get_model,
    list_models,
    model_info,
)
from eca_keras.convert import byob as byob_converter  # noqa: E402
from eca_keras.convert import resnet as resnet_converter  # noqa: E402
from eca_keras.testing import checkpoints, references  # noqa: E402
from eca_keras.testing import torch_reference as ref  # noqa: E402

MODELS = ["eca_resnet33ts", "eca_resnext26ts", "eca_botnext26ts_256", "eca_halonext26ts"]


def randomized(model, seed):
    """``model`` with random weights and BatchNorm statistics, in float64. The last BatchNorm of
    each residual branch is scaled by 0.2 so that activations stay O(1) through 26-33 blocks
    (timm's own float32 run then differs from float64 by ~5e-7)."""
    ref.randomize_(model, seed=seed)
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if module_name.endswith("conv3_1x1.bn"):
                module.weight.mul_(0.2)
                module.bias.mul_(0.2)
    return model.double().eval()


def random_timm_model(name, seed):
    torch.manual_seed(seed)  # the relative position embeddings keep timm's random init
    return randomized(timm.create_model(name), seed)


def save_as_timm(model, path):
    """A float32 copy saved as timm publishes its weights (safetensors)."""
    checkpoints.save_timm_safetensors(copy.deepcopy(model).float(), path)
    return str(path)


def timm_outputs(model, images):
    nchw = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        features = model.forward_features(nchw)
        return model.forward_head(features).numpy(), features.numpy().transpose(0, 2, 3, 1)


def relative_error(got, expected):
    return float(np.abs(np.asarray(got) - expected).max() / np.abs(expected).max())


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# The hybrids run at 256 only (bottleneck attention's embeddings; halo blocks need 8 | H/32).
PARITY = [
    ("eca_resnext26ts", 64),
    ("eca_resnet33ts", 64),
    ("eca_halonext26ts", 256),
    pytest.param("eca_botnext26ts_256", 256, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,size", PARITY)
def test_converted_timm_checkpoint_matches_timm(name, size, tmp_path):
    timm_model = random_timm_model(name, seed=1)
    checkpoint = save_as_timm(timm_model, tmp_path / f"{name}.safetensors")
    images = np.random.default_rng(2).normal(size=(1, size, size, 3))
    logits, features = timm_outputs(timm_model, images)

    shape = (size, size, 3)
    model = get_model(name, weights=checkpoint, input_shape=shape, classifier_activation=None)
    assert relative_error(model(images.astype("float32")), logits) <= 1e-4
    if name == "eca_resnext26ts":  # include_top=False loading the file (timm's head unused)
        backbone = get_model(name, weights=checkpoint, input_shape=shape, include_top=False)
    else:  # the same graph, cheaper
        backbone = keras.Model(model.input, model.get_layer("avg_pool").input)
    assert relative_error(backbone(images.astype("float32")), features) <= 1e-4

    timm_params = sum(p.numel() for p in timm_model.parameters())
    assert trainable_count(model) == timm_params == model_info(name).params
    timm_kernels = [m.conv.kernel_size[0] for m in timm_model.modules() if hasattr(m, "gate")]
    assert [layer.kernel.shape[0] for layer in model.layers if isinstance(layer, ECA)] == (
        timm_kernels
    )


def test_plain_twin_is_timms_resnext26ts(tmp_path):
    """``attention=False`` is timm's resnext26ts: it loads that model's checkpoint and computes
    its logits."""
    timm_model = random_timm_model("resnext26ts", seed=3)
    checkpoint = save_as_timm(timm_model, tmp_path / "resnext26ts.safetensors")
    images = np.random.default_rng(4).normal(size=(1, 64, 64, 3))
    logits, _ = timm_outputs(timm_model, images)
    model = ECAResNeXt26TS(
        weights=checkpoint, input_shape=(64, 64, 3), classifier_activation=None, attention=False
    )
    assert not [layer for layer in model.layers if isinstance(layer, ECA)]
    assert relative_error(model(images.astype("float32")), logits) <= 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_registry_rows_are_timms(name):
    """Parameter counts (timm counts its own), the ECA-free twin's, and the evaluation settings
    of timm's pretrained config."""
    info = model_info(name)
    assert info.family == "byob" and info.origin == info.reference == "timm"
    assert info.params == sum(p.numel() for p in timm.create_model(name).parameters())
    entry = info.default_weights
    config = timm.models.get_pretrained_cfg(f"{name}.{entry.tag}")
    assert entry.eval.input_size == config.input_size[-1] == info.default_size
    assert entry.eval.crop_pct == config.crop_pct
    assert entry.eval.interpolation == config.interpolation
    assert tuple(entry.eval.mean) == config.mean and tuple(entry.eval.std) == config.std
    test_size = config.test_input_size[-1] if config.test_input_size else None
    assert entry.test_size == test_size and entry.test_crop_pct == config.test_crop_pct
    assert entry.hf_repo == f"timm/{name}.{entry.tag}"


def test_plain_twins_have_timms_parameter_counts():
    """Without ECA, a model has exactly the parameters of timm's config with ``attn_layer=''``
    (for the bottleneck-only models: timm's resnet33ts and resnext26ts)."""
    for name in MODELS:
        size = 256 if byob.BYOB_VARIANTS[name].self_attention else 64
        plain = get_model(name, weights=None, input_shape=(size, size, 3), attention=False)
        timm_plain = references.reference_model(name, attention=False)
        assert trainable_count(plain) == sum(p.numel() for p in timm_plain.parameters()), name
    for name, twin in (("eca_resnet33ts", "resnet33ts"), ("eca_resnext26ts", "resnext26ts")):
        twin_params = sum(p.numel() for p in timm.create_model(twin).parameters())
        timm_plain = references.reference_model(name, attention=False)
        assert sum(p.numel() for p in timm_plain.parameters()) == twin_params


def test_converter_recognises_timm_byob_checkpoints():
    keys = list(timm.create_model("eca_resnext26ts").state_dict())
    assert byob_converter.matches(keys) and not resnet_converter.matches(keys)
    assert not byob_converter.matches(["layer1.0.conv1.weight", "fc.weight"])
    assert set(list_models(family="byob")) == set(MODELS)


def test_include_top_false_pooling_and_classes():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    features = ECAResNeXt26TS(weights=None, include_top=False, input_shape=(64, 64, 3))
    assert features.output_shape == (None, 2, 2, 2048)
    maps = np.asarray(features(x))
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        pooled = ECAResNeXt26TS(
            weights=None, include_top=False, pooling=pooling, input_shape=(64, 64, 3)
        )
        pooled.set_weights(features.get_weights())
        expected = reduce(maps, axis=(1, 2))
        np.testing.assert_allclose(np.asarray(pooled(x)), expected, rtol=1e-5, atol=1e-6)
    classifier = ECAResNeXt26TS(
        weights=None, classes=7, classifier_activation=None, input_shape=(64, 64, 3)
    )
    assert classifier.output_shape == (None, 7)
    assert ECAResNeXt26TS(weights=None, include_top=False).input_shape == (None, None, None, 3)


@pytest.mark.parametrize("kwargs", BAD_ARGUMENTS, ids=[str(k) for k in BAD_ARGUMENTS])
def test_errors_equal_keras_applications(kwargs):
    with pytest.raises(ValueError) as keras_error:
        keras.applications.ResNet50(**kwargs)
    # keras.applications names its own default size (224); ours is timm's 256.
    expected = str(keras_error.value).replace("(224, 224, 3)", "(256, 256, 3)")
    for constructor in (ECAResNeXt26TS, ECAHaloNeXt26TS):
        with pytest.raises(ValueError) as ours:
            constructor(**kwargs)
        assert str(ours.value) == expected


def test_pretrained_variant_errors():
    with pytest.raises(ValueError, match="attention=False"):
        ECAHaloNeXt26TS(weights="imagenet", attention=False)
    with pytest.raises(ValueError, match="kernel sizes"):
        ECAResNeXt26TS(weights="imagenet", kernel_sizes=(3, 3, 3, 3))
    with pytest.raises(ValueError, match=r"one entry per stage \(3\)"):
        ECABotNeXt26TS(weights=None, kernel_sizes=(3, 5, 5, 5))


def test_input_size_rules_of_the_hybrids():
    with pytest.raises(ValueError, match=r"takes 256x256 images only .* Received a 224x224 input"):
        ECABotNeXt26TS(weights=None, include_top=False, input_shape=(224, 224, 3))
    with pytest.raises(ValueError, match="needs a fixed input height and width"):
        ECABotNeXt26TS(weights=None, include_top=False, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="takes 256x256 images only"):
        ECABotNeXt26TS(weights=None, input_tensor=keras.Input((128, 128, 3)))
    with pytest.raises(ValueError, match=r"8x8 halo blocks.* Received a 256x224 input"):
        ECAHaloNeXt26TS(weights=None, include_top=False, input_shape=(256, 224, 3))
    variant = byob.BYOB_VARIANTS["eca_halonext26ts"]
    accepted = [
        size
        for size in range(32, 600)
        if not _raises(byob.check_input_size, "m", variant, (size, size))
    ]
    assert accepted == [*range(241, 257), *range(497, 513)]  # ceil(size / 32) = 8 or 16
    # Without the head, the size still defaults to timm's 256 (keras.applications: dynamic).
    model = ECAHaloNeXt26TS(weights=None, include_top=False, pooling="avg")
    assert model.input_shape == (None, 256, 256, 3) and model.output_shape == (None, 2048)
    assert "256x256" in ECABotNeXt26TS.__doc__ and "8x8 halo blocks" in ECAHaloNeXt26TS.__doc__


def _raises(function, *args):
    try:
        function(*args)
    except ValueError:
        return True
    return False
