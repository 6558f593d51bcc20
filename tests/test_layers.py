"""The ECA layer against an independent NumPy reference of the paper's formula."""

import math

import keras
import numpy as np
import pytest

from eca_keras import ECA, eca_kernel_size
from eca_keras.layers import DescriptorBatchNormalization

ON_TENSORFLOW = keras.backend.backend() == "tensorflow"


def compiled(function):
    """``function`` compiled by XLA: ``tf.function(jit_compile=True)`` on TensorFlow; JAX runs
    every call through XLA already."""
    if not ON_TENSORFLOW:
        return function
    import tensorflow as tf

    return tf.function(function, jit_compile=True)


def reference_eca(x, kernel, channels_axis, circular=False, pooled=None):
    """out = x * sigmoid(conv1d(GAP(x))), written from the formula with explicit loops;
    ``pooled`` (batch, channels) replaces GAP(x) when given."""
    x = np.moveaxis(np.asarray(x, np.float64), channels_axis, -1)
    batch, channels = x.shape[0], x.shape[-1]
    if pooled is None:
        pooled = x.reshape(batch, -1, channels).mean(axis=1)
    k = len(kernel)
    half = (k - 1) // 2
    gates = np.zeros((batch, channels))
    for n in range(batch):
        for c in range(channels):
            total = 0.0
            for j in range(k):
                source = c + j - half
                if circular:
                    source %= channels
                elif not 0 <= source < channels:
                    continue  # zero padding
                total += kernel[j] * pooled[n, source]
            gates[n, c] = 1.0 / (1.0 + math.exp(-total))
    out = x * gates.reshape((batch,) + (1,) * (x.ndim - 2) + (channels,))
    return np.moveaxis(out, -1, channels_axis)


# The paper's rule |log2(C)/2 + 1/2|_odd, worked out by hand.
ADAPTIVE_K = {64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7, 16: 3, 8: 3, 4: 1, 32: 3, 96: 3}


@pytest.mark.parametrize("channels,expected", sorted(ADAPTIVE_K.items()))
def test_adaptive_kernel_size(channels, expected):
    assert eca_kernel_size(channels) == expected
    layer = ECA()
    layer.build((None, 4, 4, channels))
    assert layer.kernel.shape == (expected, 1, 1)


def test_adaptive_kernel_size_rules():
    assert [eca_kernel_size(c, min_size=3) for c in (4, 64, 256, 2048)] == [3, 3, 5, 7]
    assert eca_kernel_size(256, gamma=1, b=0) == 9  # log2(256) = 8 -> 9
    with pytest.raises(ValueError, match="gamma"):
        eca_kernel_size(64, gamma=0)


LAYER_CASES = [
    ((2, 11, 7), "channels_last", 3, "zeros"),
    ((2, 5, 6, 16), "channels_last", 5, "zeros"),
    ((2, 5, 6, 16), "channels_last", 5, "circular"),
    ((2, 16, 5, 6), "channels_first", 3, "zeros"),
    ((2, 3, 4, 5, 8), "channels_last", 3, "circular"),
    ((2, 8, 3, 4, 5), "channels_first", 7, "zeros"),
    ((3, 4, 4, 6), "channels_last", 1, "zeros"),
    ((1, 2, 2, 3), "channels_last", 9, "circular"),  # the window wraps more than once
]


def layer_case(shape, data_format, k, padding, seed=0):
    """A built layer with a random kernel, an input, and the reference's arguments."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype("float32")
    layer = ECA(kernel_size=k, padding=padding, data_format=data_format)
    layer.build(shape)
    kernel = rng.normal(size=k).astype("float32")
    layer.kernel.assign(kernel.reshape(k, 1, 1))
    channels_axis = -1 if data_format == "channels_last" else 1
    return layer, x, (kernel, channels_axis, padding == "circular")


@pytest.mark.parametrize("shape,data_format,k,padding", LAYER_CASES)
def test_numerics_match_reference(shape, data_format, k, padding):
    """Eagerly (the convolution form on TensorFlow, the shifted-products form on JAX)."""
    layer, x, reference = layer_case(shape, data_format, k, padding)
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, reference_eca(x, *reference), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not ON_TENSORFLOW, reason="JAX always runs the XLA form (test above)")
@pytest.mark.parametrize("shape,data_format,k,padding", LAYER_CASES)
def test_xla_form_matches_reference_and_its_gradients(shape, data_format, k, padding):
    """Under XLA the channel convolution is k shifted products: the same values and gradients."""
    import tensorflow as tf

    layer, x, reference = layer_case(shape, data_format, k, padding)
    weights = tf.constant(np.random.default_rng(1).normal(size=shape).astype("float32"))

    def loss_and_gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, training=True)
            loss = tf.reduce_sum(out * weights)
        return out, tape.gradient(loss, [x, layer.kernel])

    out, xla_gradients = compiled(loss_and_gradients)(tf.constant(x))
    np.testing.assert_allclose(out.numpy(), reference_eca(x, *reference), rtol=1e-5, atol=1e-6)
    _, eager_gradients = loss_and_gradients(tf.constant(x))
    for xla, eager in zip(xla_gradients, eager_gradients, strict=True):
        np.testing.assert_allclose(xla.numpy(), eager.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("descriptor_rank", [2, 4])
def test_a_descriptor_is_used_in_inference_and_in_training_only_with_affine(descriptor_rank):
    """A descriptor unlike GAP(x) shows which one the layer pooled: without ``affine`` (models
    built before 0.3, whose descriptor holds the moving statistics) only in inference, with it in
    every mode, eagerly and compiled."""
    layer, x, (kernel, axis, circular) = layer_case((2, 5, 6, 16), "channels_last", 5, "zeros")
    pooled = np.random.default_rng(2).normal(size=(2, 16)).astype("float32")
    descriptor = pooled if descriptor_rank == 2 else pooled[:, None, None, :]
    identity = np.stack([np.ones(16), np.zeros(16)]).astype("float32")
    with_descriptor = reference_eca(x, kernel, axis, circular, pooled=pooled)
    without = reference_eca(x, kernel, axis, circular)
    cases = [
        (False, None, with_descriptor),
        (True, None, without),
        (True, identity, with_descriptor),
    ]
    for training, affine, expected in cases:
        for run in (lambda f: f, compiled):
            out = run(
                lambda x, d, t=training, a=affine: layer(x, descriptor=d, affine=a, training=t)
            )
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(out(x, descriptor)), expected, rtol=1e-5, atol=1e-6
            )


@pytest.mark.parametrize("shape,data_format,k,padding", LAYER_CASES[:6])
@pytest.mark.parametrize("xla", [False, True])
def test_affine_folds_the_normalisation_into_the_gate_with_the_same_gradients(
    shape, data_format, k, padding, xla
):
    """``ECA(x, affine=[s, o])`` is ``ECA(x * s + o)`` (the NumPy reference), and its gradients
    with respect to x, s, o and the kernel are those of that unfolded composition."""
    import tensorflow as tf

    if not ON_TENSORFLOW and not xla:
        pytest.skip("JAX always compiles with XLA")
    layer, x, (kernel, axis, circular) = layer_case(shape, data_format, k, padding)
    channels = shape[axis]
    rng = np.random.default_rng(3)
    affine = np.stack([rng.uniform(0.5, 2, channels), rng.normal(size=channels)]).astype("float32")
    broadcast = [1] * len(shape)
    broadcast[axis] = channels
    scale, offset = (v.reshape(broadcast) for v in affine)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x, affine=affine)),
        reference_eca(x * scale + offset, kernel, axis, circular),
        rtol=1e-5,
        atol=1e-5,
    )
    if not ON_TENSORFLOW:
        return
    weights = tf.constant(rng.normal(size=shape).astype("float32"))

    def gradients(folded):
        def run(x, affine):
            with tf.GradientTape() as tape:
                tape.watch([x, affine])
                if folded:
                    out = layer(x, affine=affine, training=True)
                else:
                    normalized = x * tf.reshape(affine[0], broadcast)
                    out = layer(normalized + tf.reshape(affine[1], broadcast), training=True)
                loss = tf.reduce_sum(out * weights)
            return tape.gradient(loss, [x, affine, layer.kernel])

        return (compiled(run) if xla else run)(tf.constant(x), tf.constant(affine))

    for folded, unfolded in zip(gradients(True), gradients(False), strict=True):
        np.testing.assert_allclose(folded.numpy(), unfolded.numpy(), rtol=1e-4, atol=1e-5)


def test_gates_are_per_channel_and_bounded():
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 10)).astype("float32")
    layer = ECA(kernel_size=3)
    gates = keras.ops.convert_to_numpy(layer.channel_weights(x))
    assert gates.shape == (2, 10)
    assert np.all((gates > 0) & (gates < 1))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel_size": 4}, "odd"),
        ({"kernel_size": 0}, "odd"),
        ({"kernel_size": -3}, "odd"),
        ({"kernel_size": 3.0}, "odd integer"),
        ({"padding": "reflect"}, "padding"),
        ({"data_format": "channels_middle"}, "data_format"),
        ({"gamma": 0}, "gamma"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ECA(**kwargs)


def test_build_errors():
    with pytest.raises(ValueError, match="rank-3, rank-4 or rank-5"):
        ECA()(np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match="rank-3, rank-4 or rank-5"):
        ECA().build((1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="known channel dimension"):
        ECA().build((None, 8, 8, None))
    with pytest.raises(ValueError, match="known channel dimension"):
        ECA(data_format="channels_first").build((None, None, 8, 8))


def test_config_round_trip():
    layer = ECA(kernel_size=5, padding="circular", data_format="channels_first", name="att")
    clone = ECA.from_config(layer.get_config())
    assert (clone.kernel_size, clone.padding, clone.data_format, clone.name) == (
        5,
        "circular",
        "channels_first",
        "att",
    )
    assert keras.saving.get_registered_object("eca_keras>ECA") is ECA


def test_keras_file_loads_without_custom_objects(tmp_path):
    inputs = keras.Input((6, 6, 32))
    x = keras.layers.Conv2D(32, 3, padding="same")(inputs)
    x = ECA(name="eca")(x)
    y = ECA(kernel_size=3, padding="circular", name="ceca")(x)
    model = keras.Model(inputs, y)
    data = np.random.default_rng(2).normal(size=(2, 6, 6, 32)).astype("float32")
    path = tmp_path / "eca.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("eca"), ECA)
    np.testing.assert_array_equal(loaded.predict(data, verbose=0), model.predict(data, verbose=0))


def test_default_initializer_matches_pytorch_conv1d():
    layer = ECA(kernel_size=5)
    layer.build((None, 4, 4, 64))
    bound = 1 / math.sqrt(5)
    values = keras.ops.convert_to_numpy(layer.kernel)
    assert np.all(np.abs(values) <= bound) and np.abs(values).max() > bound / 10


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_matches_float32(policy):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 14, 14, 64)).astype("float32")
    reference = ECA(kernel_size=3)
    reference.build(x.shape)
    kernel = rng.normal(size=(3, 1, 1)).astype("float32")
    reference.kernel.assign(kernel)
    keras.config.set_dtype_policy(policy)
    layer = ECA(kernel_size=3)
    layer.build(x.shape)
    layer.kernel.assign(kernel)
    assert layer.kernel.dtype == "float32"  # variables stay float32 under mixed policies
    out = layer(keras.ops.cast(x, layer.compute_dtype))
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    tolerance = 2e-2 if policy == "mixed_bfloat16" else 3e-3
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")),
        keras.ops.convert_to_numpy(reference(x)),
        rtol=tolerance,
        atol=tolerance,
    )


def test_trains_inside_a_model():
    """Gradients reach the ECA kernel (it is a trainable weight of the model)."""
    inputs = keras.Input((4, 4, 16))
    x = ECA(kernel_size=3, name="eca")(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    before = keras.ops.convert_to_numpy(model.get_layer("eca").kernel).copy()
    rng = np.random.default_rng(4)
    model.fit(rng.normal(size=(16, 4, 4, 16)), rng.normal(size=(16, 1)), epochs=2, verbose=0)
    assert not np.allclose(before, keras.ops.convert_to_numpy(model.get_layer("eca").kernel))


def randomize_batch_norm(layer, rng):
    """Random gamma, beta, moving mean and moving variance (positive) for a built BatchNorm."""
    ranges = ((0.5, 1.5), (-0.5, 0.5), (-1, 1), (0.5, 2))
    for variable, (low, high) in zip(layer.weights, ranges, strict=True):
        variable.assign(rng.uniform(low, high, variable.shape).astype("float32"))


def batch_norm_pair(channels, seed):
    """A DescriptorBatchNormalization and a keras BatchNormalization with equal random weights."""
    ours = DescriptorBatchNormalization(epsilon=1e-5)
    theirs = keras.layers.BatchNormalization(epsilon=1e-5)
    for layer in (ours, theirs):
        layer.build((None, 5, 5, channels))
    randomize_batch_norm(ours, np.random.default_rng(seed))
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def test_descriptor_batch_norm_is_batch_norm_and_normalises_pooled_tensors_for_inference():
    ours, theirs = batch_norm_pair(6, seed=6)
    x = np.random.default_rng(7).normal(size=(3, 5, 5, 6)).astype("float32")
    pooled = x.mean(axis=(1, 2), keepdims=True)
    inference = keras.ops.convert_to_numpy(theirs(x, training=False))
    for training in (False, True):
        # With the moving statistics in both modes (the mean of the inference output), and
        # without updating them.
        descriptor = ours(pooled, training=training, pooled=True)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(descriptor),
            inference.mean(axis=(1, 2), keepdims=True),
            rtol=1e-5,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(x, training=training)),
            keras.ops.convert_to_numpy(theirs(x, training=training)),
            rtol=1e-6,
            atol=1e-6,
        )
    for mine, reference in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(reference)
        )


def test_affine_form_is_batch_norm_and_updates_the_moving_statistics_once():
    """``layer(x, affine=True)`` is ``[scale, offset]`` with ``x * scale + offset`` equal to
    keras' BatchNormalization of x, in training (batch statistics) and inference, and leaves the
    same moving statistics."""
    ours, theirs = batch_norm_pair(6, seed=10)
    x = np.random.default_rng(11).normal(2, 3, size=(3, 5, 5, 6)).astype("float32")
    for training in (True, False, True):
        scale, offset = keras.ops.convert_to_numpy(ours(x, training=training, affine=True))
        np.testing.assert_allclose(
            x * scale + offset,
            keras.ops.convert_to_numpy(theirs(x, training=training)),
            rtol=1e-5,
            atol=1e-5,
        )
        for mine, reference in zip(ours.weights, theirs.weights, strict=True):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(reference), rtol=1e-6
            )


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("wiring", ["affine", "legacy"])
def test_a_model_with_descriptors_trains_like_one_without(jit_compile, wiring):
    """conv -> BN -> ECA wired as the builders do (the BatchNorm's affine form folded into ECA,
    the descriptor pooled before the convolution) or as before 0.3 (a second BatchNorm call on
    the pooled tensor), fitted, ends with the same weights and moving statistics as
    conv -> keras BN -> ECA."""

    def model(wiring):
        inputs = keras.Input((6, 6, 8))
        conv = keras.layers.Conv2D(16, 1, use_bias=False, name="conv")
        convolved = conv(inputs)
        pool = keras.layers.GlobalAveragePooling2D(keepdims=True)
        if wiring == "affine":
            bn = DescriptorBatchNormalization(name="bn")
            affine = bn(convolved, affine=True)
            y = ECA(3, name="eca")(convolved, descriptor=conv(pool(inputs)), affine=affine)
        elif wiring == "legacy":
            bn = DescriptorBatchNormalization(name="bn")
            descriptor = bn(pool(convolved), pooled=True)
            y = ECA(3, name="eca")(bn(convolved), descriptor=descriptor)
        else:
            y = ECA(3, name="eca")(keras.layers.BatchNormalization(name="bn")(convolved))
        outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(y))
        return keras.Model(inputs, outputs)

    keras.utils.set_random_seed(8)
    ours, theirs = model(wiring), model("plain")
    theirs.set_weights(ours.get_weights())
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(32, 6, 6, 8)).astype("float32"), rng.normal(size=(32, 2))
    for network in (ours, theirs):
        network.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit_compile)
        network.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for mine, reference in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), atol=1e-5)


def residual_chain(blocks, relu_class):
    """``blocks`` residual blocks ``relu(x + BN(conv1x1(x)))`` (a ResNet stage's shape), with
    random BatchNorm statistics."""
    keras.utils.set_random_seed(10)
    inputs = keras.Input((6, 6, 8))
    x = inputs
    for index in range(blocks):
        y = keras.layers.Conv2D(8, 1, use_bias=False)(x)
        norm = keras.layers.BatchNormalization()
        y = norm(y)
        randomize_batch_norm(norm, np.random.default_rng(index))
        x = relu_class()(keras.layers.Add()([x, y]))
    return keras.Model(inputs, x)


def optimized_hlo(model, x):
    """The optimized HLO text of ``model(x)`` compiled by XLA."""
    if ON_TENSORFLOW:
        import tensorflow as tf

        forward = tf.function(lambda images: model(images, training=False), jit_compile=True)
        return forward.experimental_get_compiler_ir(x)(stage="optimized_hlo")
    import jax

    forward = jax.jit(lambda images: model(images, training=False))
    return forward.lower(x).compile().as_text()


def largest_fusion_read(hlo):
    """The most operands any fusion of the program reads."""
    import re

    fusions = re.findall(r"= \S+ fusion\((.*?)\), kind=", hlo)
    return max(argument.count("%") for argument in fusions)


def test_residual_relu_is_relu_and_under_xla_each_block_output_is_computed_once():
    """The function and its gradients are keras' ReLU's in every mode; under XLA the largest
    fusion of a stage of residual blocks does not grow with the number of blocks (with
    ``maximum(x, 0)`` XLA recomputes every earlier block inside each block's add)."""
    from eca_keras.layers import ResidualReLU

    x = np.random.default_rng(11).normal(size=(2, 6, 6, 8)).astype("float32")
    ours, theirs = residual_chain(6, ResidualReLU), residual_chain(6, keras.layers.ReLU)
    expected = keras.ops.convert_to_numpy(theirs(x))
    assert (expected == 0).any() and (expected > 0).any()
    for run in (lambda m, v: m(v), compiled(lambda m, v: m(v))):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(run(ours, x)), expected, atol=1e-5)
    relu = ResidualReLU()
    values = np.linspace(-2, 2, 9, dtype="float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(compiled(relu)(values)), np.maximum(values, 0)
    )
    if ON_TENSORFLOW:
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def slope(v):
            with tf.GradientTape() as tape:
                tape.watch(v)
                total = tf.reduce_sum(relu(v))
            return tape.gradient(total, v)

    else:
        import jax

        slope = jax.jit(jax.grad(lambda v: relu(v).sum()))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(slope(values)), values > 0)

    reads = {
        n: largest_fusion_read(optimized_hlo(residual_chain(n, ResidualReLU), x)) for n in (4, 12)
    }
    assert reads[12] == reads[4] <= 8, reads


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pointwise_conv_is_conv2d_and_runs_a_pooled_image_as_one_matrix_product(
    data_format, tmp_path
):
    """Same values as keras' Conv2D with the same weights on a pooled (1x1) image and on a
    feature map; traced by TensorFlow, the pooled image goes through a MatMul, no Conv2D."""
    from eca_keras.layers import PointwiseConv2D

    settings = {"filters": 6, "kernel_size": 1, "use_bias": True, "data_format": data_format}
    ours, theirs = PointwiseConv2D(**settings), keras.layers.Conv2D(**settings)
    rng = np.random.default_rng(12)
    channels_last = data_format == "channels_last"
    shape = (3, 5, 4, 8) if channels_last else (3, 8, 5, 4)
    pooled_shape = (3, 1, 1, 8) if channels_last else (3, 8, 1, 1)
    ours.build(shape)
    theirs.build(shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in theirs.weights]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    pooled = rng.normal(size=pooled_shape).astype("float32")
    feature_map = rng.normal(size=shape).astype("float32")
    kernel, bias = weights[0].reshape(8, 6), weights[1]
    expected = pooled.reshape(3, 8) @ kernel + bias
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(pooled)).reshape(3, 6), expected, rtol=1e-5, atol=1e-5
    )
    if channels_last or not ON_TENSORFLOW:  # TensorFlow's CPU convolution is NHWC only
        for v in (pooled, feature_map):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(ours(v)),
                keras.ops.convert_to_numpy(theirs(v)),
                rtol=1e-5,
                atol=1e-5,
            )
    assert type(PointwiseConv2D.from_config(ours.get_config())) is PointwiseConv2D
    # A weights file written with one loads into a model with a plain Conv2D, and back.
    path = str(tmp_path / "pointwise.weights.h5")
    keras.Sequential([keras.Input(shape[1:]), ours]).save_weights(path)
    fresh = keras.layers.Conv2D(**settings)
    fresh.build(shape)
    keras.Sequential([keras.Input(shape[1:]), fresh]).load_weights(path)
    for written, read in zip(weights, fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(written, read)
    if ON_TENSORFLOW:
        import tensorflow as tf

        def kinds(v):
            graph = tf.function(ours).get_concrete_function(tf.constant(v)).graph
            return {op.type for op in graph.get_operations()}

        assert "MatMul" in kinds(pooled) and "Conv2D" not in kinds(pooled)
        if channels_last:
            assert "Conv2D" in kinds(feature_map)
