"""preprocess_input and decode_predictions."""

import keras
import numpy as np
import pytest

from eca_keras.applications import decode_predictions, preprocess_input


def test_preprocess_input_numpy_matches_formula():
    x = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype("float32")
    original = x.copy()
    out = preprocess_input(x)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out, (x / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(x, original)  # the input is left alone
    assert out.dtype == np.float32
    uint8 = preprocess_input(x.astype("uint8"))
    np.testing.assert_allclose(uint8, (x.astype("uint8") / 255.0 - mean) / std, atol=1e-5)


def test_preprocess_input_tensor_and_channels_first():
    x = np.random.default_rng(1).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    expected = preprocess_input(x)
    tensor = preprocess_input(keras.ops.convert_to_tensor(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor), expected, rtol=1e-6)
    first = preprocess_input(x.transpose(0, 3, 1, 2), data_format="channels_first")
    np.testing.assert_allclose(first, expected.transpose(0, 3, 1, 2), rtol=1e-6)
    single = preprocess_input(x[0].transpose(2, 0, 1), data_format="channels_first")
    np.testing.assert_allclose(single, expected[0].transpose(2, 0, 1), rtol=1e-6)
    with pytest.raises(ValueError, match="3 RGB channels"):
        preprocess_input(np.zeros((1, 4, 4, 4)))
    with pytest.raises(ValueError, match="data_format"):
        preprocess_input(x, data_format="nhwc")


def test_decode_predictions():
    preds = np.zeros((2, 1000), "float32")
    preds[0, [0, 1, 999]] = [0.5, 0.3, 0.2]
    preds[1, 207] = 0.9  # golden retriever
    decoded = decode_predictions(preds, top=3)
    assert decoded[0] == [
        ("n01440764", "tench", 0.5),
        ("n01443537", "goldfish", pytest.approx(0.3)),
        ("n15075141", "toilet tissue", pytest.approx(0.2)),
    ]
    assert decoded[1][0][:2] == ("n02099601", "golden retriever")
    assert len(decode_predictions(preds)[0]) == 5
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\).*\(3, 10\)"):
        decode_predictions(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="top"):
        decode_predictions(preds, top=0)
