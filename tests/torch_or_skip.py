"""torch for the tests that compare with PyTorch or write its checkpoints.

Where torch is missing they are skipped, except where ``ECA_KERAS_REQUIRE_TORCH=1`` (set by
.ci/run) or ``CI`` says they must run: there a missing torch fails the run, so a green CI always
includes the conversion, weights and parity tests.
"""

import os

import pytest

REQUIRE_VARIABLE = "ECA_KERAS_REQUIRE_TORCH"


def torch_required():
    if os.environ.get(REQUIRE_VARIABLE) is not None:
        return os.environ[REQUIRE_VARIABLE] not in ("", "0")
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def import_torch(module="torch"):
    """``module`` (torch or one of its submodules), or a skip (a failure where required)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        message = f"{module} is not installed ({error})"
        if torch_required():
            pytest.fail(
                f"{message}, but {REQUIRE_VARIABLE}/CI requires the PyTorch tests: install "
                "the test extra (pip install -e '.[test]')",
                pytrace=False,
            )
        pytest.skip(message, allow_module_level=True)
