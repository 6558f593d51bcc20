"""The layers of timm's ByobNet hybrids against timm's own modules: bottleneck attention, halo
attention (same random weights, timm in float64), and max pooling with PyTorch's padding."""

import keras
import numpy as np
import pytest
from torch_or_skip import import_torch

torch = import_torch()
import_torch("timm")

from timm.layers.bottleneck_attn import BottleneckAttn  # noqa: E402
from timm.layers.halo_attn import HaloAttn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from eca_keras.complexity import count_macs  # noqa: E402
from eca_keras.convert import byob as byob_converter  # noqa: E402
from eca_keras.layers import BottleneckAttention, HaloAttention, PaddedMaxPooling2D  # noqa: E402


def _computes_float64():
    """JAX computes float64 only with x64 enabled (off by default): there float64 layers run in
    float32 and only the float32 check applies."""
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


# Keras in float64 equals timm in float64 to rounding; float32 to float32 noise.
PRECISIONS = [("float64", 1e-12), ("float32", 1e-5)] if _computes_float64() else [("float32", 1e-5)]


def timm_output(module, x, seed):
    """``module`` with random parameters (projections N(0, 1 / fan_in), relative embeddings
    N(0, 1): logits of a few units, attention neither uniform nor one-hot), in float64, on NHWC
    ``x``; returns the module and its NHWC output."""
    generator = torch.Generator().manual_seed(seed)
    module = module.double().eval()
    with torch.no_grad():
        for parameter in module.parameters():
            std = parameter.shape[1] ** -0.5 if parameter.ndim == 4 else 1.0
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.copy_(noise * std)
        out = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    return module, out.numpy().transpose(0, 2, 3, 1)


def load_timm_weights(layer, module, input_shape):
    """Copies a timm module's weights into ``layer`` through the converter's layout."""
    layer.build(input_shape)
    state = {key: value.numpy() for key, value in module.state_dict().items()}
    layout = byob_converter.LAYOUTS[type(layer)]
    layer.set_weights([to_keras(state[key]) for key, to_keras in layout])


def relative_error(got, expected):
    return float(np.abs(np.asarray(got) - expected).max() / np.abs(expected).max())


# (size, channels, heads, key_dim, stride); key_dim None: timm's default from the channels.
BOTTLENECK_CASES = [(8, 32, 4, 16, 1), (8, 32, 4, 16, 2), (6, 48, 2, None, 1)]


@pytest.mark.parametrize("size,channels,heads,key_dim,stride", BOTTLENECK_CASES)
def test_bottleneck_attention_matches_timm(size, channels, heads, key_dim, stride):
    x = np.random.default_rng(0).normal(size=(2, size, size, channels))
    module, expected = timm_output(
        BottleneckAttn(channels, None, (size, size), stride, heads, key_dim), x, seed=1
    )
    for dtype, tolerance in PRECISIONS:
        layer = BottleneckAttention(heads, key_dim, strides=stride, dtype=dtype)
        load_timm_weights(layer, module, x.shape)
        assert relative_error(layer(x.astype(dtype)), expected) <= tolerance
    assert layer.compute_output_shape(x.shape) == expected.shape


# (height, width, channels, heads, key_dim, block, halo, stride, avg_down)
HALO_CASES = [
    (16, 8, 64, 8, 16, 8, 2, 1, False),  # two blocks, non-square
    (16, 16, 64, 8, 16, 8, 2, 2, False),  # strided queries (eca_halonext26ts' first stage-4 block)
    (8, 16, 32, 4, None, 4, 1, 2, True),  # average-pooled output
    (6, 6, 16, 2, 8, 3, 1, 2, False),  # odd block: pooled output
]


@pytest.mark.parametrize("height,width,channels,heads,key_dim,block,halo,stride,avg", HALO_CASES)
def test_halo_attention_matches_timm(
    height, width, channels, heads, key_dim, block, halo, stride, avg
):
    x = np.random.default_rng(2).normal(size=(2, height, width, channels))
    timm_module = HaloAttn(
        channels,
        stride=stride,
        num_heads=heads,
        dim_head=key_dim,
        block_size=block,
        halo_size=halo,
        avg_down=avg,
    )
    module, expected = timm_output(timm_module, x, seed=3)
    for dtype, tolerance in PRECISIONS:
        layer = HaloAttention(
            heads, key_dim, block, halo, strides=stride, avg_down=avg, dtype=dtype
        )
        load_timm_weights(layer, module, x.shape)
        assert relative_error(layer(x.astype(dtype)), expected) <= tolerance
    assert layer.compute_output_shape(x.shape) == expected.shape


@pytest.mark.parametrize("pool_size,strides,padding", [(3, 2, 1), (3, 1, 1), (2, 2, 1), (5, 2, 2)])
def test_padded_max_pooling_matches_pytorch(pool_size, strides, padding):
    """Inputs all below zero: zero padding would win every border window."""
    x = np.random.default_rng(4).uniform(-2, -0.1, (2, 7, 10, 3)).astype("float32")
    expected = torch.nn.functional.max_pool2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), pool_size, strides, padding
    )
    expected = expected.numpy().transpose(0, 2, 3, 1)
    layer = PaddedMaxPooling2D(pool_size, strides, padding)
    np.testing.assert_array_equal(np.asarray(layer(x)), expected)
    assert layer.compute_output_shape(x.shape) == expected.shape


def test_layer_errors():
    with pytest.raises(ValueError, match="divisible by block_size=8"):
        HaloAttention(block_size=8).build((None, 12, 16, 64))
    with pytest.raises(ValueError, match="divisible by num_heads=8"):
        HaloAttention(8).build((None, 16, 16, 12))
    with pytest.raises(ValueError, match="known height and width"):
        BottleneckAttention().build((None, None, None, 32))
    layer = BottleneckAttention(key_dim=8, name="bot")
    layer.build((None, 8, 8, 32))
    with pytest.raises(ValueError, match="built for 8x8 feature maps. Received 4x4"):
        layer(np.zeros((1, 4, 4, 32), "float32"))
    with pytest.raises(ValueError, match="between 0 and pool_size // 2"):
        PaddedMaxPooling2D(3, 2, padding=2)
    with pytest.raises(ValueError, match="`strides` must be 1 or 2"):
        HaloAttention(strides=4)


def test_saved_model_round_trip_and_mixed_precision(tmp_path):
    """A model of the three layers survives ``.keras`` (no custom_objects); under mixed_float16
    it stays within float16 rounding of float32 (the softmax runs in float32)."""

    def build():
        inputs = keras.Input((16, 16, 16))
        x = PaddedMaxPooling2D(3, 1, 1)(inputs)
        x = HaloAttention(2, 8, block_size=8, halo_size=2)(x)
        x = BottleneckAttention(2, 8, strides=2)(x)
        return keras.Model(inputs, x)

    model = build()
    x = np.random.default_rng(5).normal(size=(2, 16, 16, 16)).astype("float32")
    path = tmp_path / "layers.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected = np.asarray(model(x))
    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)

    keras.config.set_dtype_policy("mixed_float16")
    mixed = build()
    mixed.set_weights(model.get_weights())
    assert relative_error(np.asarray(mixed(x)).astype("float32"), expected) <= 1e-2


@pytest.mark.parametrize(
    "timm_module,layer,shape",
    [
        (BottleneckAttn(32, None, (8, 8), 2, 4, 16), BottleneckAttention(4, 16, 2), (8, 8, 32)),
        (
            HaloAttn(64, stride=2, num_heads=8, dim_head=16, block_size=8, halo_size=2),
            HaloAttention(8, 16, 8, 2, strides=2),
            (16, 24, 64),
        ),
        (
            HaloAttn(16, num_heads=2, block_size=4, halo_size=1),
            HaloAttention(2, None, 4, 1),
            (8, 8, 16),
        ),
    ],
)
def test_attention_macs_match_flop_counter(timm_module, layer, shape):
    """complexity.count_macs counts what PyTorch's FlopCounterMode counts on timm's module: the
    projections and every matrix product (q k^T, attention v, the relative logits)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        timm_module.eval()(torch.zeros(1, shape[2], shape[0], shape[1]))
    inputs = keras.Input(shape)
    assert count_macs(keras.Model(inputs, layer(inputs))) == counter.get_total_flops() // 2


@pytest.mark.parametrize(
    "make",
    [
        lambda fmt: BottleneckAttention(2, 8, strides=2, data_format=fmt),
        lambda fmt: HaloAttention(2, 8, block_size=4, halo_size=1, strides=2, data_format=fmt),
        lambda fmt: PaddedMaxPooling2D(3, 2, 1, data_format=fmt),
    ],
)
def test_channels_first_equals_channels_last(make):
    x = np.random.default_rng(6).normal(size=(2, 8, 8, 16)).astype("float32")
    last, first = make("channels_last"), make("channels_first")
    expected = np.asarray(last(x))
    first.build((None, 16, 8, 8))
    first.set_weights(last.get_weights())
    if isinstance(first, PaddedMaxPooling2D) and keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow has no NCHW max pooling on the CPU; checked under JAX")
    got = np.asarray(first(x.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
