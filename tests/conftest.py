"""Shared test set-up: quiet TensorFlow, tests/ importable, float32 policy, one seed per test,
and the main job's run directory (trained once per session, or the one CI trained)."""

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

# The main job's run directory when it was trained already (.ci/run trains it once, as the
# README's first command, and the tests reuse it instead of training it again).
DIGITS_RUN_VARIABLE = "ECA_KERAS_DIGITS_RUN"
DIGITS_EPOCHS = 15


@pytest.fixture(autouse=True)
def _restore_keras_globals():
    """Each test starts with float32, channels_last and the same random state, whatever ran
    before it in this process (pytest-xdist decides that): every unseeded initializer, shuffle
    or draw of a test is the same in every run."""
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """The main job, ``eca-keras train`` with no dataset (ECA-MobileNetV2 on the digits, 15
    epochs): its run directory. ``$ECA_KERAS_DIGITS_RUN`` names one already trained (it must
    have finished); otherwise it is trained once per test session in a subprocess."""
    import csv
    import subprocess

    trained = os.environ.get(DIGITS_RUN_VARIABLE)
    if trained:
        history = os.path.join(trained, "history.csv")
        rows = list(csv.DictReader(open(history))) if os.path.isfile(history) else []
        assert [int(row["epoch"]) for row in rows] == list(range(DIGITS_EPOCHS)), (
            f"{DIGITS_RUN_VARIABLE}={trained} is not a finished run of the main job"
        )
        return trained
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
