"""The constructors: architecture facts, keras.applications behaviour, and its error messages."""

import importlib.util
import os

import keras
import numpy as np
import pytest
from test_layers import randomize_batch_norm

from eca_keras import ECA
from eca_keras.applications import (
    ECAMobileNetV2,
    ECAResNet18,
    ECAResNet50,
    ECAResNet50D,
    get_model,
    list_models,
    model_info,
)

# Trainable parameters of the released / timm models (DESIGN.md, the issue), typed independently
# of the registry.
PUBLISHED_PARAMS = {
    "eca_resnet18": 11_689_556,
    "eca_resnet34": 21_797_744,
    "eca_resnet50": 25_557_112,
    "eca_resnet101": 44_549_317,
    "eca_resnet152": 60_193_042,
    "eca_mobilenet_v2": 3_504_903,
    "ecaresnet26t": 16_011_916,
    "ecaresnet50t": 25_573_814,
    "ecaresnet50d": 25_576_350,
    "ecaresnet101d": 44_568_563,
    "ecaresnetlight": 30_162_046,
    "ecaresnet269d": 102_093_077,
    "ecaresnet50d_pruned": 19_939_713,
    "ecaresnet101d_pruned": 24_876_040,
    "eca_nfnet_l0": 24_143_924,
    "eca_nfnet_l1": 41_407_728,
    "eca_nfnet_l2": 56_722_348,
    "eca_resnet33ts": 19_676_302,
    "eca_resnext26ts": 10_297_988,
    "eca_botnext26ts_256": 10_593_301,
    "eca_halonext26ts": 10_756_885,
}
# The same networks without ECA: torchvision's resnet18 / resnet50 / mobilenet_v2.
PLAIN_PARAMS = {
    "eca_resnet18": 11_689_512,
    "eca_resnet50": 25_557_032,
    "eca_mobilenet_v2": 3_504_872,
}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def eca_kernel_sizes(model):
    return [layer.kernel.shape[0] for layer in model.layers if isinstance(layer, ECA)]


def test_registry_lists_every_model():
    assert sorted(list_models()) == sorted(PUBLISHED_PARAMS)
    with pytest.raises(ValueError, match="Unknown model 'resnet50'.*eca_resnet50"):
        get_model("resnet50")


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_counts(name):
    model = get_model(name, weights=None)
    assert trainable_count(model) == PUBLISHED_PARAMS[name] == model_info(name).params
    assert model.name == name
    assert model.output_shape == (None, 1000)


@pytest.mark.parametrize("name", sorted(PLAIN_PARAMS))
def test_attention_false_is_the_plain_baseline(name):
    model = get_model(name, weights=None, attention=False)
    assert trainable_count(model) == PLAIN_PARAMS[name]
    assert not eca_kernel_sizes(model)


def test_released_kernel_sizes():
    r50 = ECAResNet50(weights=None)
    assert eca_kernel_sizes(r50) == [3] * 3 + [5] * 4 + [5] * 6 + [7] * 3
    r18 = ECAResNet18(weights=None)
    assert eca_kernel_sizes(r18) == [3, 3, 5, 5, 7, 7, 7, 7]
    mobile = ECAMobileNetV2(weights=None)
    assert eca_kernel_sizes(mobile) == [1] * 10 + [3] * 7
    timm = ECAResNet50D(weights=None)
    assert eca_kernel_sizes(timm) == [5] * 13 + [7] * 3


def test_kernel_sizes_override():
    model = ECAResNet18(weights=None, kernel_sizes=(3, 3, 3, 3))
    assert eca_kernel_sizes(model) == [3] * 8
    with pytest.raises(ValueError, match="one entry per stage"):
        ECAResNet18(weights=None, kernel_sizes=(3, 3))
    with pytest.raises(ValueError, match="odd"):
        ECAResNet18(weights=None, kernel_sizes=(3, 4, 5, 7))
    with pytest.raises(ValueError, match="kernel sizes"):
        ECAResNet18(weights="imagenet", kernel_sizes=(3, 3, 3, 3))
    with pytest.raises(ValueError, match="attention=False"):
        ECAMobileNetV2(weights="imagenet", attention=False)
    with pytest.raises(ValueError, match="alpha=1.0"):
        ECAMobileNetV2(weights="imagenet", alpha=0.5)


def test_layer_names_are_the_documented_contract():
    names = {layer.name for layer in ECAResNet50(weights=None).layers}
    for name in (
        "conv1_pad",
        "conv1_conv",
        "conv1_bn",
        "pool1_pool",
        "conv2_block1_0_conv",
        "conv2_block1_3_bn",
        "conv2_block1_eca",
        "conv3_block1_2_pad",
        "conv5_block3_out",
        "avg_pool",
        "predictions",
    ):
        assert name in names
    names = {layer.name for layer in ECAResNet50D(weights=None).layers}
    assert {
        "conv1_1_conv",
        "conv1_2_bn",
        "conv1_3_conv",
        "conv1_bn",
        "conv3_block1_0_pool",
    } <= names
    assert "conv2_block1_0_pool" not in names  # stride 1: no pooling in the shortcut
    names = {layer.name for layer in ECAMobileNetV2(weights=None).layers}
    assert {"block1_dw_conv", "block2_expand_conv", "block17_eca", "top_conv"} <= names
    assert {"block1_expand_conv", "block1_add"}.isdisjoint(names)
    assert "block3_add" in names and "block4_add" not in names  # stride 2 starts row 3


def eca_arguments(model, eca_name):
    """The layers that produce a model's ECA layer's input, ``descriptor`` and ``affine``."""
    arguments = model.get_layer(eca_name)._inbound_nodes[0].arguments
    tensors = (arguments.args[0], arguments.kwargs["descriptor"], arguments.kwargs["affine"])
    return [tensor._keras_history.operation for tensor in tensors]


def test_the_narrow_descriptor_counts_the_convolutions_weights_four_times(monkeypatch):
    """Where pooling a bottleneck's 4x narrower input and convolving it pays (see
    ``blocks.WEIGHT_READ_COST``): ECA-ResNet50's stages 2-3 at 224 px, not ecaresnet269d's
    stage 3 at 320 px (20x20x256 -> 1024), whose batch-1 matrix products cost it 3 points under
    XLA; its stage 2 (40x40x128 -> 512) still does."""
    from eca_keras.applications import blocks

    def narrower(height, channels, filters):
        return blocks._narrower(keras.KerasTensor((None, height, height, channels)), filters)

    assert narrower(56, 64, 256) and narrower(28, 128, 512)  # ECA-ResNet50, conv2 and conv3
    assert not narrower(14, 256, 1024) and not narrower(7, 512, 2048)  # conv4, conv5
    assert narrower(40, 128, 512) and not narrower(20, 256, 1024)  # ecaresnet269d at 320 px
    monkeypatch.setattr(blocks, "WEIGHT_READ_COST", 1)
    assert narrower(20, 256, 1024)  # the weights counted once: the narrow path 0.3.2 took


def test_eca_gates_the_convolution_with_the_batch_norm_folded_in():
    """ECA-ResNet50 at 224 px: ECA takes the block's last convolution's output and that
    BatchNorm's affine form; the descriptor's pooling reads the pointwise conv's input in stages
    2-3 (it is 4x narrower and 56x56 or 28x28 large), the conv's output in stages 4-5 (there
    reading the conv's weights again would cost more). No BatchNorm output is a feature map."""
    model = ECAResNet50(weights=None)
    shared = {
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and len(layer._inbound_nodes) == 2
    }
    assert shared == {
        f"conv{s}_block{b}_3_conv" for s, n in ((2, 3), (3, 4)) for b in range(1, n + 1)
    }
    for layer in model.layers:
        if isinstance(layer, ECA):
            block = layer.name.removesuffix("_eca")
            source, descriptor, affine = eca_arguments(model, layer.name)
            assert (source.name, affine.name) == (f"{block}_3_conv", f"{block}_3_bn")
            expected = f"{block}_3_conv" if block < "conv4" else f"{block}_eca_pool"
            assert descriptor.name == expected
            assert model.get_layer(f"{block}_3_bn").output.shape == (2, layer.channels)
    mobilenet = ECAMobileNetV2(weights=None)
    assert [op.name for op in eca_arguments(mobilenet, "block5_eca")] == [
        "block5_project_conv",
        "block5_eca_pool",
        "block5_project_bn",
    ]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="JAX always compiles with XLA")
@pytest.mark.parametrize("constructor", [ECAResNet18, ECAResNet50, ECAMobileNetV2])
def test_folded_models_equal_normalising_then_pooling_in_every_mode(constructor):
    """The builders' models (BatchNorm folded into ECA, the descriptor pooled before it) against
    the same weights traced in :func:`converter_form` (the normalised tensor written and pooled,
    as in the paper): eagerly in training and inference, in graph mode and under XLA, with random
    BatchNorm statistics."""
    import tensorflow as tf

    from eca_keras.layers.eca import converter_form

    # Features, not the head: MobileNetV2's dropout would differ between training runs.
    model = constructor(weights=None, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            randomize_batch_norm(layer, rng)
    x = tf.constant(rng.uniform(-1, 1, (2, 64, 64, 3)).astype("float32"))
    for training in (False, True):
        run = lambda x, t=training: model(x, training=t)  # noqa: E731
        with converter_form():
            reference = run(x).numpy()
        scale = np.abs(reference).max()
        for form in (run, tf.function(run), tf.function(run, jit_compile=True)):
            # Batch statistics of 8 values per channel (MobileNetV2's last blocks) magnify
            # rounding to ~1e-4.
            atol = 1e-3 if training else 1e-5
            np.testing.assert_allclose(form(x).numpy() / scale, reference / scale, atol=atol)


@pytest.mark.parametrize("constructor", [ECAResNet18, ECAResNet50D, ECAMobileNetV2])
def test_include_top_false_and_pooling(constructor):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    features = constructor(weights=None, include_top=False, input_shape=(64, 64, 3))
    assert features.output_shape[1:3] == (2, 2)
    maps = features.predict(x, verbose=0)
    # Two compiled programs round differently; a random deep net's features reach ~1e2-1e3.
    atol = 1e-6 * np.abs(maps).max()
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        pooled = constructor(
            weights=None, include_top=False, pooling=pooling, input_shape=(64, 64, 3)
        )
        pooled.set_weights(features.get_weights())
        np.testing.assert_allclose(
            pooled.predict(x, verbose=0), reduce(maps, axis=(1, 2)), rtol=1e-5, atol=atol
        )
    dynamic = constructor(weights=None, include_top=False)
    assert dynamic.input_shape == (None, None, None, 3)


def test_input_tensor_with_predecessors():
    inputs = keras.Input((48, 48, 3))
    scaled = keras.layers.Rescaling(0.5)(inputs)
    model = ECAResNet18(weights=None, input_tensor=scaled, include_top=False, pooling="avg")
    assert model.inputs[0] is inputs  # the source input, as keras.applications does
    assert model.output_shape == (None, 512)
    assert ECAResNet18(weights=None, input_tensor=inputs, classes=7).output_shape == (None, 7)


def test_classes_and_activation():
    model = ECAMobileNetV2(
        weights=None, classes=7, classifier_activation=None, input_shape=(64, 64, 3)
    )
    logits = model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
    assert logits.shape == (1, 7) and not np.isclose(logits.sum(), 1.0)
    assert model.get_layer("top_dropout").rate == 0.25


def test_weights_from_a_file(tmp_path):
    model = ECAMobileNetV2(weights=None, input_shape=(64, 64, 3), classes=5)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    loaded = ECAMobileNetV2(weights=path, input_shape=(64, 64, 3), classes=5)
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_keras_file_round_trip(tmp_path):
    model = ECAResNet18(weights=None, input_shape=(64, 64, 3), classes=10)
    x = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    path = tmp_path / "r18.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: ECA is registered
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize("constructor", [ECAResNet18, ECAResNet50D, ECAMobileNetV2])
def test_initial_weights_follow_the_random_seed(constructor):
    """``keras.utils.set_random_seed`` decides every initial kernel, and no two layers start
    equal (a shared unseeded initializer would give equal-shaped layers equal kernels)."""

    def initial_kernels(seed):
        keras.utils.set_random_seed(seed)
        model = constructor(weights=None, input_shape=(32, 32, 3), classes=4)
        return [w.numpy() for w in model.weights if w.path.endswith("kernel")]

    first, again, other = initial_kernels(0), initial_kernels(0), initial_kernels(1)
    for kernel, same_seed, other_seed in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(kernel, same_seed)
        assert not np.array_equal(kernel, other_seed)
    assert len({kernel.tobytes() for kernel in first}) == len(first)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_model_matches_float32(policy):
    reference = ECAResNet18(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    keras.config.set_dtype_policy(policy)
    model = ECAResNet18(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    model.set_weights(reference.get_weights())
    x = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32") / 255
    expected = reference.predict(x, verbose=0)
    got = model.predict(x, verbose=0).astype("float32")
    scale = np.abs(expected).max()
    tolerance = 0.05 if policy == "mixed_bfloat16" else 0.01
    assert np.abs(got - expected).max() <= tolerance * scale


@pytest.mark.parametrize("constructor", [ECAResNet50D, ECAMobileNetV2])
def test_channels_first(constructor):
    keras.utils.set_random_seed(0)
    last = constructor(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    keras.config.set_image_data_format("channels_first")
    first = constructor(weights=None, input_shape=(3, 64, 64), classifier_activation=None)
    assert first.output_shape == (None, 1000)
    assert first.get_layer("conv1_bn" if constructor is ECAMobileNetV2 else "conv1_1_bn").axis == 1
    first.set_weights(last.get_weights())  # kernels have the same layout in both formats
    if keras.backend.backend() == "tensorflow" and not _tensorflow_has_gpu():
        pytest.skip(
            "TensorFlow has no NCHW convolution on the CPU; checked under KERAS_BACKEND=jax"
        )
    x = np.random.default_rng(4).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    logits = last.predict(x, verbose=0)  # logits: a softmax would magnify float32 reordering
    difference = np.abs(first.predict(x.transpose(0, 3, 1, 2), verbose=0) - logits).max()
    assert difference <= 1e-4 * np.abs(logits).max()


def _tensorflow_has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# (kwargs, which part of keras.applications rejects it); every message must equal Keras' own.
BAD_ARGUMENTS = [
    {"weights": "no/such/file.h5"},
    {"weights": "imagenet", "classes": 10},
    {"weights": "imagenet", "include_top": False, "input_shape": (64, 64, 1)},
    {"weights": "imagenet", "include_top": True, "input_shape": (128, 128, 3)},
    {"weights": None, "include_top": False, "input_shape": (16, 64, 3)},
    {"weights": None, "include_top": True, "input_shape": (None, None, 3)},
    {"weights": None, "include_top": False, "input_shape": (64, 64)},
]


@pytest.mark.parametrize("kwargs", BAD_ARGUMENTS, ids=[str(k) for k in BAD_ARGUMENTS])
def test_errors_equal_keras_applications(kwargs):
    with pytest.raises(ValueError) as keras_error:
        keras.applications.ResNet50(**kwargs)
    for constructor in (ECAResNet50, ECAMobileNetV2):
        with pytest.raises(ValueError) as ours:
            constructor(**kwargs)
        assert str(ours.value) == str(keras_error.value)


def test_activation_error_like_keras_applications():
    with pytest.raises(ValueError, match="Only `None` and `softmax` activations are allowed"):
        ECAResNet50(weights="imagenet", classifier_activation="relu")
    with pytest.raises(ValueError, match="`pooling` should be one of"):
        ECAResNet50(weights=None, include_top=False, pooling="sum")


def test_channel_warning_like_keras_applications():
    with pytest.warns(UserWarning, match="usually expects 1 or 3 input channels"):
        ECAResNet18(weights=None, include_top=False, input_shape=(64, 64, 5))


def test_constructor_signature_and_docstring():
    import inspect

    ours = list(inspect.signature(ECAResNet50).parameters)
    theirs = list(inspect.signature(keras.applications.ResNet50).parameters)
    assert ours[: len(theirs)] == theirs
    assert ours[len(theirs) :] == ["kernel_sizes", "attention"]
    assert "(3, 5, 5, 7)" in ECAResNet50.__doc__ and ECAResNet50.__name__ == "ECAResNet50"
    assert "alpha" in ECAMobileNetV2.__doc__


def test_tfds_label_files_match_bundled_classes():
    from eca_keras.applications.imagenet_utils import imagenet_classes

    classes = imagenet_classes()
    assert len(classes) == 1000 and len({wnid for wnid, _ in classes}) == 1000
    spec = importlib.util.find_spec("tensorflow_datasets")
    labels = os.path.join(
        spec.submodule_search_locations[0], "datasets", "imagenet2012", "labels.txt"
    )
    if not os.path.exists(labels):
        pytest.skip("this TFDS version ships no imagenet2012/labels.txt")
    with open(labels) as handle:
        assert [wnid for wnid, _ in classes] == handle.read().split()
    assert [wnid for wnid, _ in classes] == sorted(wnid for wnid, _ in classes)  # ImageFolder order


def test_weights_path_may_be_a_pathlib_path(tmp_path):
    model = ECAResNet18(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "r18.weights.h5"
    model.save_weights(path)
    loaded = ECAResNet18(weights=path, include_top=False, input_shape=(32, 32, 3))
    x = np.random.default_rng(5).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_weights_of_another_model_are_one_clear_error(tmp_path):
    """Keras alone warns once per layer and dumps the first mismatching arrays."""
    import warnings

    path = str(tmp_path / "mobilenet.weights.h5")
    ECAMobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10).save_weights(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as error:
            ECAResNet18(weights=path, input_shape=(32, 32, 3), classes=10)
        with pytest.raises(ValueError, match=r"predictions expects \(1280, 5\), the file has"):
            ECAMobileNetV2(weights=path, input_shape=(32, 32, 3), classes=5)
    message = str(error.value)
    assert "\n" not in message and len(message) < 400
    assert message.startswith(f"{path} does not hold weights of this eca_resnet18: ")
    assert "(first: conv1_conv expects (7, 7, 3, 64), the file has (3, 3, 3, 32))" in message
    assert caught == []
