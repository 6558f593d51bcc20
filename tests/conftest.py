"""Shared test set-up: quiet TensorFlow, tests/ importable, float32 policy."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

# torch's CUDA build brings Triton, which timm and FlopCounterMode load; loaded after TensorFlow,
# its LLVM crashes the process (segmentation fault), so it is loaded first.
try:
    import triton  # noqa: F401, E402
except ImportError:
    pass

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_keras_globals():
    """Each test starts with float32 and channels_last, whatever the previous one set."""
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """The main job, ``eca-keras train`` with no dataset (ECA-MobileNetV2 on the digits, 15
    epochs), run once per test session in a subprocess: its run directory."""
    import subprocess

    run = str(tmp_path_factory.mktemp("digits") / "run")
    environment = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", "train", "--model-dir", run],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run
