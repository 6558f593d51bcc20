"""ECA-NFNets against timm itself: each new layer against its timm module, one block against
timm's ``NormFreeBlock``, and whole models (random weights, float64 timm, saved as timm saves
them, converted) in logits and ``include_top=False`` features; keras.applications behaviour."""

import copy
import functools

import keras
import numpy as np
import pytest
from test_applications import BAD_ARGUMENTS
from torch_or_skip import import_torch

torch = import_torch()
timm = import_torch("timm")

from timm.layers import EcaModule, ScaledStdConv2d  # noqa: E402
from timm.models.nfnet import GammaAct, NormFreeBlock  # noqa: E402

from eca_keras.applications import ECANFNetL0, get_model, nfnet  # noqa: E402
from eca_keras.applications.weights import convert_checkpoint  # noqa: E402
from eca_keras.convert import apply_checkpoint, apply_state_dict  # noqa: E402
from eca_keras.layers import (  # noqa: E402
    ECA,
    ScaledActivation,
    ScaledResidual,
    ScaledStdConv2D,
    eca_kernel_size,
)
from eca_keras.testing.checkpoints import save_timm_safetensors  # noqa: E402

# Odd sizes all the way down (35 -> 18 -> 9 -> 5 -> 3 -> 2): the strided convolutions' symmetric
# padding and the ceil-mode average pooling; small, since timm in float64 is slow on the CPU.
SIZE = 35


def relative_error(got, expected):
    return float(np.abs(np.asarray(got, "float64") - expected).max() / np.abs(expected).max())


def to_nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def randomize_nfnet_(module, seed):
    """timm's own initialisation (weight-standardised kernels, which standardisation makes any
    scale equivalent), then moderately random gains U(0.5, 1.5) (timm starts each branch's last
    at 0), biases N(0, 0.1), ECA kernels N(0, 1/k) and a classifier N(0, 1/fan_in): activations
    stay O(1-10) through the deepest model. Returns ``module.double().eval()``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            shape = parameter.shape
            if name.endswith(".gain"):
                parameter.copy_(torch.rand(shape, generator=generator) + 0.5)
            elif name.endswith(".bias"):
                parameter.copy_(torch.randn(shape, generator=generator) * 0.1)
            elif parameter.dim() == 3:  # ECA's Conv1d [1, 1, k]
                parameter.copy_(torch.randn(shape, generator=generator) * shape[-1] ** -0.5)
            elif parameter.dim() == 2:  # the classifier
                parameter.copy_(torch.randn(shape, generator=generator) * shape[1] ** -0.5)
    return module.double().eval()


def timm_nfnet(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kwargs)
    assert not list(model.buffers())  # no BatchNorm: the parameters are the whole state
    return randomize_nfnet_(model, seed + 1)


def save_as_timm(model, path):
    """timm's safetensors of a float32 copy (as published) of the float64 reference."""
    save_timm_safetensors(copy.deepcopy(model).float(), path)
    return path


def timm_outputs(model, images):
    with torch.no_grad():
        features = model.forward_features(to_nchw(images))
        logits = model.forward_head(features)
    return logits.numpy(), features.numpy().transpose(0, 2, 3, 1)


# --- layers against timm's modules -------------------------------------------------------


def conv_pair(in_channels, filters, kernel_size, stride, groups, gamma, epsilon, seed):
    """timm's ScaledStdConv2d (float64, random weight, bias and gain) and a Keras model of ours
    (symmetric padding before a strided convolution, as the NFNet builder does) with its
    weights."""
    torch.manual_seed(seed)
    theirs = ScaledStdConv2d(
        in_channels, filters, kernel_size, stride, groups=groups, gamma=gamma, eps=epsilon
    )
    randomize_nfnet_(theirs, seed)
    layer = ScaledStdConv2D(
        filters,
        kernel_size,
        strides=stride,
        padding="valid" if stride > 1 else "same",
        groups=groups,
        gamma=gamma,
        epsilon=epsilon,
    )
    inputs = keras.Input((None, None, in_channels))
    x = keras.layers.ZeroPadding2D(kernel_size // 2)(inputs) if stride > 1 else inputs
    ours = keras.Model(inputs, layer(x))
    layer.set_weights(
        [
            theirs.weight.detach().numpy().transpose(2, 3, 1, 0),
            theirs.bias.detach().numpy(),
            theirs.gain.detach().numpy().reshape(-1),
        ]
    )
    return theirs, ours, layer


CONV_CASES = [  # in, out, kernel, stride, groups, gamma, epsilon
    (3, 16, 3, 2, 1, 1.7881293296813965, 1e-5),
    (16, 32, 3, 1, 1, 1.7881293296813965, 1e-5),
    (64, 24, 1, 1, 1, 1.0, 1e-6),
    (32, 32, 3, 2, 4, 1.7881293296813965, 1e-5),
    (12, 12, 3, 1, 3, 2.0, 1e-4),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_scaled_std_conv_matches_timm(case):
    theirs, ours, layer = conv_pair(*case, seed=sum(case[:5]))
    x = np.random.default_rng(0).normal(size=(2, 11, 11, case[0]))
    with torch.no_grad():
        expected = theirs(to_nchw(x)).numpy().transpose(0, 2, 3, 1)
    assert relative_error(ours(x.astype("float32")), expected) <= 1e-5
    assert [w.path.rsplit("/", 1)[-1] for w in layer.weights] == ["kernel", "bias", "gain"]
    # The standardised kernel is timm's F.batch_norm of the weight, in Keras' layout.
    assert np.allclose(
        keras.ops.convert_to_numpy(layer.standardized_kernel()),
        _timm_standardized(theirs).transpose(2, 3, 1, 0),
        rtol=1e-5,
        atol=1e-6,
    )


def _timm_standardized(conv):
    weight = conv.weight.detach().reshape(1, conv.out_channels, -1)
    scale = (conv.gain * conv.scale).detach().view(-1)
    normalised = torch.nn.functional.batch_norm(
        weight, None, None, weight=scale, training=True, momentum=0.0, eps=conv.eps
    )
    return normalised.reshape_as(conv.weight).numpy()


def test_scaled_std_conv_mixed_precision_standardises_in_float32():
    """A kernel of 100 + N(0, 0.01) standardises well in float32; in float16 (steps of 1/16 at
    100) it would be noise. Under mixed_float16 the layer computes in float16 but standardises
    the float32 variables, then casts."""
    _, reference, layer = conv_pair(16, 32, 3, 1, 1, 1.7881293296813965, 1e-5, seed=3)
    kernel, bias, gain = layer.get_weights()
    kernel = 100 + 0.01 * np.random.default_rng(0).normal(size=kernel.shape).astype("float32")
    layer.set_weights([kernel, bias, gain])
    keras.config.set_dtype_policy("mixed_float16")
    mixed = ScaledStdConv2D(32, 3, padding="same", gamma=1.7881293296813965, epsilon=1e-5)
    inputs = keras.Input((None, None, 16))
    model = keras.Model(inputs, mixed(inputs))
    model.set_weights(reference.get_weights())
    x = np.random.default_rng(1).normal(size=(2, 9, 9, 16)).astype("float32")
    got = keras.ops.convert_to_numpy(model(x))
    assert got.dtype == np.float16
    assert relative_error(got, keras.ops.convert_to_numpy(reference(x))) <= 2e-3


def test_scaled_std_conv_saves_its_gain(tmp_path):
    """``.keras`` and ``.weights.h5`` files keep the gain (Conv2D saves kernel and bias only)."""
    _, model, _ = conv_pair(8, 8, 3, 1, 2, 1.5, 1e-5, seed=4)
    x = np.random.default_rng(2).normal(size=(1, 7, 7, 8)).astype("float32")
    model.save(tmp_path / "conv.keras")
    loaded = keras.saving.load_model(tmp_path / "conv.keras")
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.layers[-1].get_config()["gamma"] == 1.5
    _, other, _ = conv_pair(8, 8, 3, 1, 2, 1.5, 1e-5, seed=5)
    model.save_weights(tmp_path / "conv.weights.h5")
    other.load_weights(tmp_path / "conv.weights.h5")
    np.testing.assert_array_equal(other(x), model(x))


def test_scaled_std_conv_is_counted_as_a_conv2d():
    from eca_keras.complexity import count_macs

    model = keras.Sequential(
        [
            keras.Input((11, 11, 32)),
            keras.layers.ZeroPadding2D(1),
            ScaledStdConv2D(32, 3, strides=2, groups=4),
        ]
    )
    assert count_macs(model) == 6 * 6 * 32 * 3 * 3 * 8  # positions x filters x k x k x in/g


def test_scaled_activation_matches_timm_gamma_act_and_beta():
    x = np.random.default_rng(3).normal(size=(2, 5, 5, 7)) * 3
    torch_x = to_nchw(x)
    gamma = 1.7881293296813965
    expected = GammaAct("silu", gamma=gamma)(torch_x.clone()).numpy().transpose(0, 2, 3, 1)
    assert relative_error(ScaledActivation("silu", gamma)(x.astype("float32")), expected) <= 1e-6
    beta = 1.04**-0.5  # an NF block's pre-activation: act1(x) * beta
    expected = (torch.nn.SiLU()(torch_x) * beta).numpy().transpose(0, 2, 3, 1)
    layer = ScaledActivation("silu", beta)
    assert relative_error(layer(x.astype("float32")), expected) <= 1e-6
    assert ScaledActivation.from_config(layer.get_config()).scale == beta


def test_scaled_residual_is_the_nf_block_sum():
    rng = np.random.default_rng(4)
    shortcut, branch = (rng.normal(size=(2, 3, 3, 4)).astype("float32") for _ in range(2))
    layer = ScaledResidual(0.2, 2.0)
    # timm: out = attn_gain * attn(out); out = out * alpha + shortcut
    expected = (torch.from_numpy(branch) * 2.0) * 0.2 + torch.from_numpy(shortcut)
    np.testing.assert_array_equal(layer([shortcut, branch]), expected.numpy())
    assert ScaledResidual.from_config(layer.get_config()).branch_gain == 2.0


@pytest.mark.parametrize("channels", [16, 64, 128, 256, 512, 1536, 2048, 3072])
def test_eca_is_timms_eca_module(channels):
    """timm's EcaModule (k from the channels, at least 3, zero padding) is ECA with
    ``min_kernel_size=3``, on the same weights."""
    theirs = EcaModule(channels)
    k = theirs.conv.weight.shape[-1]
    assert k == eca_kernel_size(channels, min_size=3)
    with torch.no_grad():
        theirs.conv.weight.copy_(torch.randn(theirs.conv.weight.shape) * k**-0.5)
    ours = ECA(min_kernel_size=3)
    x = np.random.default_rng(channels).normal(size=(2, 3, 3, channels)).astype("float32")
    ours.build(x.shape)
    ours.set_weights([theirs.conv.weight.detach().numpy().reshape(-1, 1, 1)])
    with torch.no_grad():
        expected = theirs(to_nchw(x)).numpy().transpose(0, 2, 3, 1)
    assert relative_error(ours(x), expected) <= 1e-6


# --- one block against timm's NormFreeBlock ------------------------------------------------


def timm_block(in_channels, channels, stride, beta, attention):
    conv = functools.partial(ScaledStdConv2d, gamma=nfnet.SILU_GAMMA, eps=nfnet.STD_EPSILON)
    return NormFreeBlock(
        in_channels,
        channels,
        stride=stride,
        alpha=nfnet.ALPHA,
        beta=beta,
        bottle_ratio=nfnet.BOTTLENECK_RATIO,
        group_size=nfnet.GROUP_WIDTH,
        ch_div=8,
        reg=False,
        extra_conv=True,
        attn_layer=EcaModule if attention else None,
        attn_gain=nfnet.ATTENTION_GAIN,
        act_layer=torch.nn.SiLU,
        conv_layer=conv,
    )


@pytest.mark.parametrize(
    "in_channels,channels,stride,size,attention",
    [(256, 512, 2, 9, True), (512, 512, 1, 6, True), (256, 512, 2, 8, False)],
)
def test_block_matches_timm_normfree_block(in_channels, channels, stride, size, attention):
    """Grouped 3x3s (2 groups of 64), the strided and the identity shortcut, the pre-activation
    scaling, ECA and its gain, converted by the name map from timm's ``stages.0.0.*`` keys."""
    beta = 1.08**-0.5
    theirs = randomize_nfnet_(timm_block(in_channels, channels, stride, beta, attention), 7)
    inputs = keras.Input((size, size, in_channels))
    name = "stage1_block1"
    ours = keras.Model(
        inputs, nfnet._block(inputs, in_channels, channels, stride, beta, 5, attention, name)
    )
    state = {f"stages.0.0.{k}": v.float().numpy() for k, v in theirs.state_dict().items()}
    apply_state_dict(ours, state, family="nfnet")
    x = np.random.default_rng(8).normal(size=(2, size, size, in_channels))
    with torch.no_grad():
        expected = theirs(to_nchw(x)).numpy().transpose(0, 2, 3, 1)
    assert relative_error(ours(x.astype("float32")), expected) <= 1e-5


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="JAX always compiles with XLA")
def test_xla_inference_with_the_descriptor_equals_pooling():
    """Under XLA, ECA takes ``conv3(mean(act3))`` (4x narrower than conv3's output) for the
    channel descriptor; it equals pooling the branch, as without XLA. (24x24: large enough that
    the builder takes that path, see ``blocks.WEIGHT_READ_COST``.)"""
    import tensorflow as tf

    inputs = keras.Input((24, 24, 256))
    block = keras.Model(inputs, nfnet._block(inputs, 256, 256, 1, 1.0, 5, True, "stage1_block1"))
    assert "stage1_block1_eca_pool" in {layer.name for layer in block.layers}
    rng = np.random.default_rng(9)
    for weight in block.weights:
        if weight.path.endswith("gain"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    x = tf.constant(rng.normal(size=(2, 24, 24, 256)).astype("float32"))
    xla = tf.function(lambda x: block(x, training=False), jit_compile=True)(x).numpy()
    graph = tf.function(lambda x: block(x, training=False))(x).numpy()
    np.testing.assert_allclose(xla, graph, atol=1e-5 * np.abs(graph).max())


# --- whole models against timm -------------------------------------------------------------


def check_model(name, tmp_path, seed, include_top_false_from_file):
    reference = timm_nfnet(name, seed)
    checkpoint = save_as_timm(reference, tmp_path / f"{name}.safetensors")
    images = np.random.default_rng(seed).normal(size=(2, SIZE, SIZE, 3))
    logits, features = timm_outputs(reference, images)
    shape = (SIZE, SIZE, 3)
    if include_top_false_from_file:
        weights = tmp_path / f"{name}.weights.h5"
        convert_checkpoint(name, checkpoint, weights)
    else:
        weights = checkpoint  # converted on the fly, without writing a Keras file
    model = get_model(name, weights=str(weights), input_shape=shape, classifier_activation=None)
    assert relative_error(model(images.astype("float32")), logits) <= 1e-4
    if include_top_false_from_file:
        backbone = get_model(name, weights=str(weights), input_shape=shape, include_top=False)
    else:
        backbone = keras.Model(model.input, model.get_layer("avg_pool").input)
    assert relative_error(backbone(images.astype("float32")), features) <= 1e-4


def test_eca_nfnet_l0_matches_timm(tmp_path):
    check_model("eca_nfnet_l0", tmp_path, seed=10, include_top_false_from_file=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["eca_nfnet_l1", "eca_nfnet_l2"])
def test_deeper_eca_nfnets_match_timm(name, tmp_path):
    check_model(name, tmp_path, seed=11, include_top_false_from_file=False)


def test_attention_false_is_timms_nfnet_without_attention(tmp_path):
    """The plain twin is timm's same network with ``attn_layer=""`` (no ECA, no gain of 2)."""
    reference = timm_nfnet("eca_nfnet_l0", seed=12, attn_layer="")
    checkpoint = save_as_timm(reference, tmp_path / "plain.safetensors")
    model = ECANFNetL0(
        weights=None, attention=False, input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    assert model.count_params() == sum(p.numel() for p in reference.parameters())
    assert not any(isinstance(layer, ECA) for layer in model.layers)
    apply_checkpoint(model, checkpoint)
    images = np.random.default_rng(12).normal(size=(1, SIZE, SIZE, 3))
    logits, _ = timm_outputs(reference, images)
    assert relative_error(model(images.astype("float32")), logits) <= 1e-4


@pytest.mark.parametrize("name", ["eca_nfnet_l0", "eca_nfnet_l1", "eca_nfnet_l2"])
def test_weight_rows_are_timms_pretrained_configs(name):
    """Sizes, crops, interpolation, mean/std and the Hugging Face repository of each weight row
    are timm's ``pretrained_cfg`` (the accuracies are results-imagenet.csv's, typed in)."""
    from eca_keras.applications import model_info

    for entry in model_info(name).weights:
        cfg = timm.models.get_pretrained_cfg(entry.name)
        assert (entry.eval.input_size, entry.eval.crop_pct) == (cfg.input_size[1], cfg.crop_pct)
        assert (entry.test_size, entry.test_crop_pct) == (cfg.test_input_size[1], cfg.test_crop_pct)
        assert entry.eval.interpolation == cfg.interpolation
        assert np.allclose(entry.eval.mean, cfg.mean) and np.allclose(entry.eval.std, cfg.std)
        assert entry.hf_repo == cfg.hf_hub_id
        assert [r.size for r in entry.results] == [entry.eval.input_size, entry.test_size]


# --- keras.applications behaviour ---------------------------------------------------------


def test_layer_names_are_the_documented_contract():
    model = ECANFNetL0(weights=None)
    names = {layer.name for layer in model.layers}
    assert {
        "stem_conv1_pad",
        "stem_conv1",
        "stem_act2",
        "stem_conv4_pad",
        "stem_conv4",
        "stage1_block1_act1",
        "stage1_block1_downsample_conv",
        "stage2_block1_downsample_pool",
        "stage2_block1_conv2_pad",
        "stage2_block2_conv2b",
        "stage3_block6_conv3",
        "stage4_block3_eca",
        "stage4_block3_add",
        "final_conv",
        "final_act",
        "avg_pool",
        "predictions",
    } <= names
    assert {"stage1_block1_downsample_pool", "stage2_block2_downsample_conv"}.isdisjoint(names)
    kernel_sizes = [layer.kernel_size_ for layer in model.layers if isinstance(layer, ECA)]
    assert kernel_sizes == [5] * 12
    groups = {layer.name: layer.groups for layer in model.layers if layer.name.endswith("conv2")}
    assert groups["stage1_block1_conv2"] == 1 and groups["stage4_block3_conv2"] == 6
    assert model.get_layer("final_conv").filters == 2304


def randomize_gains(model, seed):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if weight.path.endswith("gain"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))


def test_include_top_false_pooling_and_classes():
    x = np.random.default_rng(13).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    features = ECANFNetL0(weights=None, include_top=False, input_shape=(64, 64, 3))
    randomize_gains(features, 13)
    assert features.output_shape == (None, 2, 2, 2304)
    maps = np.asarray(features(x))
    pooled = ECANFNetL0(weights=None, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    pooled.set_weights(features.get_weights())
    np.testing.assert_allclose(
        pooled(x), maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6 * np.abs(maps).max()
    )
    # Unknown sizes: no descriptor shortcut is taken (its cost cannot be compared).
    dynamic = ECANFNetL0(weights=None, include_top=False)
    assert dynamic.input_shape == (None, None, None, 3)
    assert not any(layer.name.endswith("_eca_pool") for layer in dynamic.layers)
    model = ECANFNetL0(weights=None, classes=7, input_shape=(64, 64, 3))
    assert model.output_shape == (None, 7)
    assert np.allclose(np.asarray(model(x)).sum(axis=1), 1.0, atol=1e-5)  # softmax


@pytest.mark.parametrize("kwargs", BAD_ARGUMENTS, ids=[str(k) for k in BAD_ARGUMENTS])
def test_errors_equal_keras_applications(kwargs):
    with pytest.raises(ValueError) as keras_error:
        keras.applications.ResNet50(**kwargs)
    with pytest.raises(ValueError) as ours:
        ECANFNetL0(**kwargs)
    assert str(ours.value) == str(keras_error.value)


def test_pretrained_variants_are_refused():
    with pytest.raises(ValueError, match="No pretrained weights exist for eca_nfnet_l0 with"):
        ECANFNetL0(weights="imagenet", attention=False)
    with pytest.raises(ValueError, match="use ECA kernel sizes"):
        ECANFNetL0(weights="ra2_in1k", kernel_sizes=(3, 3, 3, 3))
    with pytest.raises(ValueError, match="needs one entry per stage"):
        ECANFNetL0(weights=None, kernel_sizes=(3, 3))
    model = ECANFNetL0(weights=None, kernel_sizes=(3, 3, 5, 7), input_shape=(32, 32, 3))
    assert [layer.kernel_size_ for layer in model.layers if isinstance(layer, ECA)] == (
        [3] + [3] * 2 + [5] * 6 + [7] * 3
    )


def test_mixed_float16_model_matches_float32():
    reference = ECANFNetL0(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
    randomize_gains(reference, 14)
    keras.config.set_dtype_policy("mixed_float16")
    model = ECANFNetL0(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
    model.set_weights(reference.get_weights())
    x = np.random.default_rng(14).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    expected = np.asarray(reference(x))
    got = np.asarray(model(x)).astype("float32")
    assert np.abs(got - expected).max() <= 0.01 * np.abs(expected).max()
