"""The command line as a new user meets it: every mistake is one line on stderr naming the problem
(exit 2 for usage, 1 for a failure), nothing is half-written or deleted, Ctrl-C is one line, the
help documents every option, and bad image files are named before anything runs on them."""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from eca_keras import cli
from eca_keras.training import recipes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(argv, capsys):
    """``eca-keras ARGV`` in this process: (exit code, stderr lines)."""
    try:
        code = cli.main([str(arg) for arg in argv])
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err.strip().splitlines()


def one_line(code, lines, expected_code, *fragments):
    assert code == expected_code, lines
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["evaluate", "--model", "m", "--dataset", "digits", "--batch-size", "0"], "--batch-size"),
        (["evaluate", "--model", "m", "--dataset", "digits", "--limit", "0"], "--limit"),
        (["evaluate", "--model", "m", "--dataset", "digits", "--limit", "-5"], "--limit"),
        (["export", "--model", "m", "--input-size", "abc"], "--input-size"),
        (["export", "--model", "m", "--quantize", "int4"], "invalid choice: 'int4'"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--learning-rate", "-1"], "--learning-rate"),
        (["predict", "--top", "x"], "--top"),
        (["evaluate", "--dataset", "digits"], "required: --model"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(argv, fragment, capsys):
    line = one_line(*run(argv, capsys), 2, fragment, "error:")
    assert line.endswith("--help)")


@pytest.mark.parametrize(
    "override,message",
    [
        ("learning_rate.base=abc", "learning_rate.base must be a number; received 'abc'"),
        ("learning_rate=0.1", "learning_rate must be a mapping; received 0.1"),
        ("eval.crop_pct=0", "eval.crop_pct must be a number in (0, 1]; received 0"),
        ("augment.crop_scale=[2,1]", "augment.crop_scale must be a pair with 0 < low <= high"),
        ("epochs=true", "epochs must be an integer >= 1; received True"),
        ("steps_per_epoch=-1", "steps_per_epoch must be an integer >= 1 or null"),
        ("steps_per_epoch=0", "steps_per_epoch must be an integer >= 1 or null"),
        ("validation_fraction=1.5", "validation_fraction must be a number in (0, 1)"),
        ("validation_fraction=0", "validation_fraction must be a number in (0, 1)"),
        ("weight_decay=-1", "weight_decay must be a number in [0, inf)"),
        ("label_smoothing=5", "label_smoothing must be a number in [0, 1)"),
        ("label_smoothing=1", "label_smoothing must be a number in [0, 1)"),
        ("image_size=16", "image_size must be an integer >= 32"),
        ("batch_size=2.5", "batch_size must be an integer >= 1"),
        ("optimizer.name=lion", "optimizer.name must be one of"),
        ("learning_rate.schedule=linear", "learning_rate.schedule must be one of"),
        ("eval.interpolation=nearest", "eval.interpolation must be one of"),
        ("augment.flip=sometimes", "augment.flip must be true or false"),
        ("attention=maybe", "attention must be true or false"),
        ("no_such_key=1", "Unknown config key 'no_such_key'"),
        ("epochs", "Overrides look like key=value"),
    ],
)
def test_bad_settings_are_one_line_before_anything_runs(override, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    one_line(*run(["train", "--model-dir", run_dir, "--set", override], capsys), 1, message)
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "text,message",
    [
        ("model: [unclosed\n", "is not valid YAML (line 2)"),
        ("- a list\n", "is not a YAML mapping"),
        ("model: eca_mobilenet_v2\ndataset: digits\n", "lacks the key(s) weights, image_size"),
    ],
    ids=["malformed", "not-a-mapping", "incomplete"],
)
def test_a_bad_recipe_file_is_one_line(text, message, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    one_line(*run(["train", "--recipe", recipe], capsys), 1, message)


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    """(A real Ctrl-C during training: tests/test_runs.py.)"""

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_train", interrupted)
    monkeypatch.setattr(cli, "cmd_evaluate", interrupted)
    code, lines = run(["train"], capsys)
    resume = "eca-keras train: interrupted; re-run the same command to resume"
    assert (code, lines) == (130, [resume])
    code, lines = run(["evaluate", "--model", "m", "--dataset", "d"], capsys)
    assert (code, lines) == (130, ["eca-keras evaluate: interrupted; nothing was written"])


def test_help_documents_every_option():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    undocumented = [
        f"{name} {action.option_strings[0]}"
        for name, command in commands.items()
        for action in command._actions
        if action.option_strings and action.option_strings[0] != "-h" and not action.help
    ]
    assert undocumented == []
    for name, command in commands.items():
        assert "%%" not in command.format_help(), name
    train = " ".join(commands["train"].format_help().split())
    recipe = recipes.default_recipe()
    assert f"With no arguments: {recipe['model']} on the embedded {recipe['dataset']}" in train
    assert f"(default: the recipe's; digits: {recipe['model']})" in train
    assert "98%" in commands["export"].format_help()


def test_models_lists_without_tensorflow():
    code = (
        "import sys; from eca_keras.cli import main; assert main(['models']) == 0; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "eca_resnet50" in result.stdout and "25,557,112" in result.stdout


# ---- outputs: refused before any work, nothing deleted ---------------------------------------


def test_export_never_replaces_what_it_did_not_write(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    monkeypatch.chdir(folder)
    base = ["export", "--model", "eca_mobilenet_v2", "--weights", "none", "--format"]
    one_line(*run([*base, "saved_model", "--output", "."], capsys), 1, "is not empty")
    line = one_line(*run([*base, "saved_model", "--output", ".", "--overwrite"], capsys), 1)
    assert "not a SavedModel written by eca-keras export; refusing to replace it" in line
    (folder / "model.tflite").write_bytes(b"an earlier file")
    one_line(*run([*base, "tflite", "--output", "model.tflite"], capsys), 1, "exists; pass")
    one_line(*run([*base, "tflite", "--output", "model.bin"], capsys), 1, "must end in .tflite")
    one_line(*run([*base, "tflite", "--input-size", 7], capsys), 1, "at least 32; received 7")
    assert sorted(os.listdir(folder)) == ["model.tflite", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine"


def test_convert_checks_the_output_name_before_reading_anything(tmp_path, capsys):
    base = ["convert", "--model", "eca_resnet18", "--checkpoint", tmp_path / "missing.pth"]
    line = one_line(*run([*base, "--output", tmp_path / "r18.h5"], capsys), 1)
    assert "must end in '.weights.h5'" in line and "partial" not in line
    one_line(*run([*base, "--output", tmp_path], capsys), 1, "must end in '.weights.h5'")
    one_line(*run([*base, "--output", tmp_path / "r18.weights.h5"], capsys), 1, "No such")
    assert os.listdir(tmp_path) == []


def safetensors_file(path, header, data=b""):
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


@pytest.mark.parametrize(
    "kind,message",
    [
        ("truncated", "incomplete metadata"),
        ("bad-json", "invalid JSON"),
        ("huge-header", "header too large"),
    ],
)
def test_a_broken_safetensors_file_is_one_line(kind, message, tmp_path, capsys):
    header = b'{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}'
    path = tmp_path / "model.safetensors"
    if kind == "truncated":
        safetensors_file(path, header, bytes(8))
    elif kind == "bad-json":
        safetensors_file(path, b'{"w": ' + b"x" * 20 + b"}", bytes(16))
    else:
        path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    argv = ["convert", "--model", "ecaresnet50d", "--checkpoint", path]
    line = one_line(*run([*argv, "--output", tmp_path / "x.weights.h5"], capsys), 1, message)
    assert str(path) in line and not (tmp_path / "x.weights.h5").exists()


# ---- bad image files --------------------------------------------------------------------------


def bad_files(folder):
    """An empty file, a text file named .jpg, and a PNG cut in half (its header is fine)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("<html>not found</html>")
    Image.fromarray(np.full((40, 40, 3), 128, "uint8")).save(folder / "whole.png")
    data = (folder / "whole.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize(
    "name,message",
    [
        ("empty.png", "the file is empty"),
        ("text.jpg", "not an image (.jpg whose content is not JPEG"),
        ("truncated.png", "not a readable image (damaged or truncated?): Invalid PNG data"),
    ],
)
def test_predict_names_a_bad_image_in_one_line(name, message, tmp_path, capsys):
    path = bad_files(tmp_path) / name
    code, lines = run(["predict", "--weights", "none", path], capsys)
    assert lines[0].startswith("note:")  # random weights
    line = one_line(code, lines[1:], 1, f"{path}: {message}")
    assert "{{" not in line and "[Op:" not in line  # no TensorFlow decorations


def imagenet_style_folder(root):
    """Two WordNet-id class folders of small images (a 1000-class model evaluates them)."""
    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537"):
        (root / wnid).mkdir(parents=True)
        for index in range(2):
            pixels = rng.integers(0, 256, (48, 40, 3)).astype("uint8")
            Image.fromarray(pixels).save(root / wnid / f"{index}.png")
    return root


def test_evaluate_names_bad_images_or_skips_them(tmp_path, capsys):
    folder = imagenet_style_folder(tmp_path / "val")
    bad_files(folder / "n01440764")
    (folder / "n01440764" / "whole.png").unlink()
    base = ["evaluate", "--model", "eca_mobilenet_v2", "--weights", "none", "--dataset", folder]
    empty = folder / "n01440764" / "empty.png"
    one_line(*run(base, capsys), 1, f"{empty}: the file is empty", "--skip-bad-images")
    empty.unlink()
    (folder / "n01440764" / "text.jpg").unlink()
    truncated = folder / "n01440764" / "truncated.png"
    line = one_line(*run(base, capsys), 1, f"{truncated}: cannot be decoded as images")
    assert "Invalid PNG data" in line and "--skip-bad-images" in line
    bad_files(folder / "n01440764")
    (folder / "n01440764" / "whole.png").unlink()
    skipped = "skipping 3 of 7 image files of .*empty.png, .*text.jpg, .*truncated.png"
    with pytest.warns(UserWarning, match=skipped):
        code, lines = run([*base, "--skip-bad-images", "--json"], capsys)
    assert code == 0, lines


def test_train_refuses_bad_images_before_it_starts(tmp_path, capsys):
    folder = imagenet_style_folder(tmp_path / "images")
    (folder / "n01440764" / "2.jpg").write_bytes(b"")
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", folder, "--model-dir", run_dir, "--image-size", 32]
    one_line(*run(argv, capsys), 1, "2.jpg: the file is empty", "--skip-bad-images")
    assert not (run_dir / "config.yaml").exists()


def test_folder_datasets_refuse_empty_classes_and_ignore_hidden_folders(tmp_path, capsys):
    from eca_keras.data import classification

    folder = imagenet_style_folder(tmp_path / "images")
    (folder / "typo").mkdir()
    (folder / ".ipynb_checkpoints").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(folder / ".ipynb_checkpoints" / "x.png")
    argv = ["train", "--dataset", folder, "--model-dir", tmp_path / "run"]
    line = one_line(*run(argv, capsys), 1, "class folders without images", "typo")
    assert "remove them or add images" in line
    (folder / "typo").rmdir()
    with pytest.warns(UserWarning, match="ignoring hidden folders .ipynb_checkpoints"):
        splits = classification.load_splits(str(folder))
    assert splits.class_names == ["n01440764", "n01443537"]
