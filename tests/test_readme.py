"""README's set-up commands are what CI runs, and the CLI answers as documented."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def setup_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_ci_runs_the_readme_commands():
    install_and_main, install_and_tests = setup_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert install_and_main in ci and install_and_tests in ci
    assert "pytest" in install_and_tests and "set -euo pipefail" in ci
    # The main job starts from a clean run directory, once; the tests reuse it and must not
    # skip the PyTorch tests.
    fresh = "rm -rf runs/eca_mobilenet_v2-digits"
    assert ci.index(fresh) < ci.index(install_and_main) < ci.index("ECA_KERAS_DIGITS_RUN=")
    assert ci.index("ECA_KERAS_REQUIRE_TORCH=1") < ci.index(install_and_tests)


def run_cli(*args):
    # TensorFlow's own log level as a user has it (unset): the CLI must keep its chatter out.
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
    )


def test_cli_help_and_models():
    help_text = run_cli("--help")
    assert help_text.returncode == 0 and "models" in help_text.stdout
    models = run_cli("models")
    assert models.returncode == 0, models.stderr
    assert "eca_resnet50" in models.stdout and "25,557,112" in models.stdout
    assert "102,093,077" in models.stdout


def test_cli_demo_classifies_the_bundled_image():
    demo = run_cli("demo")
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.strip().splitlines()
    assert lines[0].endswith("flower.jpg") and len(lines) == 6
    # One line on stderr: the note. No "failed call to cuInit", no oneDNN notice.
    assert demo.stderr.strip().splitlines() == [
        "note: eca_mobilenet_v2 has random weights (--weights none), so these classes are "
        "arbitrary; pass --weights imagenet for the pretrained network."
    ]


def test_cli_reports_bad_input_clearly():
    missing = run_cli("predict", "--weights", "none", "no_such_image.jpg")
    assert missing.returncode == 1 and "No such image file: no_such_image.jpg" in missing.stderr
    unknown = run_cli("predict", "--model", "resnet9000", "--weights", "none")
    assert unknown.returncode == 1 and "Unknown model 'resnet9000'" in unknown.stderr


def test_readme_weights_table_matches_the_registry():
    from eca_keras.applications import registry
    from eca_keras.hub.presets import preset_name

    text = (ROOT / "README.md").read_text()
    for entry in registry.weight_entries().values():
        row = next(
            line
            for line in text.splitlines()
            if line.startswith(f"| `{entry.model}` | `{entry.name}`")
        )
        assert entry.file_name in row and f"`{preset_name(entry)}`" in row
        for result in entry.results:
            assert f"{result.top1:.2f}" in row and f"@ {result.size} ({result.crop_pct})" in row
