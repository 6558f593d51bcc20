"""Deployment: files real clients accept. TFLite metadata read back by MediaPipe's displayer, the
client check (MediaPipe's ImageClassifier) refusing a wrong labels file or normalisation, the GPU
delegate's rules, ONNX verified by ONNX Runtime (the main job's run), ECA's export lowering, and
exports without the optional extra. The main job's TFLite exports are checked by MediaPipe in
tests/test_export.py."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from eca_keras import artifacts, extras
from eca_keras import export as eca_export
from eca_keras.export import gpu, mediapipe_compat, metadata, verify
from eca_keras.layers import ECA
from eca_keras.layers.eca import export_lowering

ON_DIGITS_RUN = pytest.mark.xdist_group("digits_run")
LABELS = [f"digit {i}" for i in range(10)]


def tflite_metadata_names(path):
    """The names of a .tflite's metadata entries, read with LiteRT's schema (not MediaPipe)."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as handle:
        model = schema.Model.GetRootAs(handle.read(), 0)
    return [model.Metadata(i).Name() for i in range(model.MetadataLength())]


def keras_probabilities(model, pixels):
    from eca_keras.applications import preprocess_input

    outputs = np.asarray(model.predict(preprocess_input(pixels.astype("float32")), verbose=0))
    return tf.nn.softmax(outputs).numpy()


def digits_pixels(config, count=None):
    from eca_keras.data import classification
    from eca_keras.preprocessing import eval_pixels

    split = classification.load_splits("digits").validation
    split = split.take(count) if count else split
    batches = split.map(lambda image, label: (eval_pixels(image, config), label)).batch(512)
    pixels, labels = zip(*((p.numpy(), y.numpy()) for p, y in batches), strict=True)
    return np.concatenate(pixels), np.concatenate(labels)


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    """A small ECA classifier of 10 classes at 32x32 as a .keras file: converts in seconds."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = ECA(kernel_size=3)(x)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = ECA()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="predictions")(x))
    path = str(tmp_path_factory.mktemp("small") / "small_eca.keras")
    model.save(path)
    return path


# ---- TFLite metadata ------------------------------------------------------------------------


def test_metadata_written_and_read_back_by_mediapipe(small_model_file, tmp_path):
    """Metadata on a bare flatbuffer, read back with MediaPipe's own MetadataDisplayer."""
    from eca_keras.export.tflite import write_tflite

    bare = str(tmp_path / "bare.tflite")
    write_tflite(keras.saving.load_model(small_model_file), bare, 32)
    with open(bare, "rb") as handle:
        flatbuffer = handle.read()
    assert metadata.read_tflite_metadata(flatbuffer) is None
    card = {"name": "small", "description": "d", "version": "2", "author": "me", "license": "MIT"}
    sidecar = {"eval": {"input_size": 32, "crop_pct": 0.875, "interpolation": "bilinear"}}
    written = metadata.write_tflite_metadata(flatbuffer, LABELS, sidecar, card)

    mediapipe_compat.install()
    from mediapipe.tasks.python.metadata import metadata as mp_metadata

    displayer = mp_metadata.MetadataDisplayer.with_model_buffer(bytearray(written))
    shown = json.loads(displayer.get_metadata_json())
    assert {key: shown[key] for key in ("name", "description", "version", "author", "license")} == (
        card
    )
    assert shown["min_parser_version"] == "1.0.0"
    image = shown["subgraph_metadata"][0]["input_tensor_metadata"][0]
    assert image["content"]["content_properties"]["color_space"] == "RGB"
    assert image["process_units"][0]["options"] == {"mean": [0.0], "std": [1.0]}
    assert "resize the short side to 36" in image["description"]  # floor(32 / 0.875)
    assert sorted(displayer.get_packed_associated_file_list()) == ["eca_keras.json", "labels.txt"]
    assert displayer.get_associated_file_buffer("labels.txt").decode().split("\n") == LABELS
    assert json.loads(displayer.get_associated_file_buffer("eca_keras.json")) == sidecar
    # LiteRT ignores the metadata: the same outputs as the bare file.
    with_metadata = str(tmp_path / "with_metadata.tflite")
    with open(with_metadata, "wb") as handle:
        handle.write(written)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype="uint8")
    np.testing.assert_array_equal(
        artifacts.load_artifact(with_metadata)(pixels), artifacts.load_artifact(bare)(pixels)
    )


def test_mediapipe_still_lacks_its_metadata_extension():
    """mediapipe 1.2.x ships metadata.py without the compiled module it imports; the package
    installs a stand-in. The day MediaPipe ships it again, this fails: remove the stand-in."""
    program = (
        "import sys\n"
        "sys.modules['tensorflow'] = None  # MediaPipe imports it only when it can (seconds)\n"
        "from eca_keras.export import mediapipe_compat\n"
        "print(mediapipe_compat.extension_is_missing())\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True", (
        "MediaPipe ships mediapipe.tasks.cc.metadata.python._pywrap_metadata_version again: "
        "delete eca_keras/export/mediapipe_compat.py and its install() calls"
    )


def test_minimum_parser_version_follows_the_schema_history():
    """The stand-in's version rule on metadata using members of known schema versions (the
    version history of MediaPipe's metadata_schema.fbs)."""
    import flatbuffers
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    def version(edit):
        model = fb.ModelMetadataT()
        subgraph = fb.SubGraphMetadataT()
        subgraph.inputTensorMetadata = [fb.TensorMetadataT()]
        model.subgraphMetadata = [subgraph]
        edit(model, subgraph)
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder))
        return mediapipe_compat.minimum_parser_version(builder.Output())

    def vocabulary(model, subgraph):
        entry = fb.AssociatedFileT()
        entry.type = fb.AssociatedFileType.VOCABULARY
        subgraph.inputTensorMetadata[0].associatedFiles = [entry]

    def process_units(model, subgraph):
        subgraph.inputProcessUnits = []

    def regex_tokenizer(model, subgraph):
        unit = fb.ProcessUnitT()
        unit.optionsType = fb.ProcessUnitOptions.RegexTokenizerOptions
        unit.options = fb.RegexTokenizerOptionsT()
        subgraph.outputProcessUnits = [unit]

    def custom_metadata(model, subgraph):
        subgraph.customMetadata = [fb.CustomMetadataT()]

    assert version(lambda model, subgraph: None) == "1.0.0"
    assert version(vocabulary) == "1.0.1"
    assert version(process_units) == "1.1.0"
    assert version(regex_tokenizer) == "1.2.1"
    assert version(custom_metadata) == "1.5.0"


# ---- the client check refuses a file a phone app would misread ---------------------------------


def write_with(**changes):
    """``metadata.write_tflite_metadata`` with some arguments replaced."""
    original = metadata.write_tflite_metadata

    def write(flatbuffer, labels, sidecar, card, normalization=None):
        arguments = {"labels": labels, "normalization": normalization, **changes}
        if callable(arguments["labels"]):
            arguments["labels"] = arguments["labels"](labels)
        return original(flatbuffer, sidecar=sidecar, card=card, **arguments)

    return write


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"labels": lambda labels: labels[1:] + labels[:1]}, "carry another name"),
        ({"normalization": ([127.5], [127.5])}, r"normalised with mean \[127.5\]"),
    ],
    ids=["labels_shifted_by_one", "normalisation_of_a_float_model"],
)
def test_a_wrong_labels_file_or_normalisation_is_refused(
    small_model_file, changes, message, tmp_path, monkeypatch
):
    monkeypatch.setattr(metadata, "write_tflite_metadata", write_with(**changes))
    output = tmp_path / "out" / "small.tflite"
    with pytest.raises(verify.VerificationError, match=message):
        eca_export.export(str(output), model=small_model_file, verification_images=50)
    assert os.listdir(tmp_path / "out") == []


# ---- without the optional extra ---------------------------------------------------------------


def test_without_the_deploy_extra(small_model_file, tmp_path, monkeypatch, capsys):
    """MediaPipe and the ONNX tools missing: a TFLite export still works and says what it
    skipped; ONNX export and running a .onnx fail in one line naming the extra."""
    for name in ("mediapipe", "onnxruntime", "tf2onnx", "onnx"):
        monkeypatch.setitem(sys.modules, name, None)  # `import <name>` now fails
    output = str(tmp_path / "small.tflite")
    result = eca_export.export(output, model=small_model_file, verification_images=50)
    printed = capsys.readouterr().out
    assert "client check (MediaPipe's ImageClassifier) was skipped" in printed
    assert "pip install 'eca-keras[deploy]'" in printed
    assert result.client_check == {"skipped": printed.split("note: ")[-1].splitlines()[0]}
    sidecar = artifacts.read_metadata(output)
    assert sidecar["tflite_metadata"] == {"written": False, "reason": "mediapipe is not installed"}
    assert sidecar["gpu_delegate"]["incompatible"][0]["op"] == "CAST"
    assert b"TFLITE_METADATA" not in tflite_metadata_names(output)

    with pytest.raises(RuntimeError, match=r"needs the extra eca-keras\[deploy\] \(tf2onnx, "):
        eca_export.export(str(tmp_path / "x.onnx"), model=small_model_file, format="onnx")
    assert not (tmp_path / "x.onnx").exists()
    (tmp_path / "x.onnx").write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"Running an ONNX file needs .*'eca-keras\[deploy\]'"):
        artifacts.load_artifact(str(tmp_path / "x.onnx"))
    assert extras.missing(extras.ONNX_EXPORT) == list(extras.ONNX_EXPORT)


def test_onnx_without_the_extra_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    from eca_keras import cli

    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    output = str(tmp_path / "m.onnx")
    arguments = ["export", "--model", "eca_mobilenet_v2", "--weights", "none", "--format", "onnx"]
    assert cli.main([*arguments, "--output", output]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "eca-keras export: error: Exporting to ONNX needs the extra eca-keras[deploy] (tf2onnx "
        "missing): pip install 'eca-keras[deploy]'"
    ]
    assert not os.path.exists(output)


def test_metadata_fields_on_the_command_line(capsys):
    from eca_keras import cli

    parser = cli.build_parser()
    given = [
        "export",
        "--model",
        "m.keras",
        "--metadata",
        "license=MIT",
        "--metadata",
        "author=A B",
    ]
    assert parser.parse_args(given).metadata == [("license", "MIT"), ("author", "A B")]
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--model", "m.keras", "--metadata", "license"])
    assert "expected KEY=VALUE, got 'license'" in capsys.readouterr().err


# ---- GPU delegate -----------------------------------------------------------------------------


def op(name, inputs, outputs=(("float32", [1, 8, 8, 4], False),), version=1, **options):
    return gpu.Op(0, name, version, list(inputs), list(outputs), type("Options", (), options))


RUNTIME_4D = ("float32", [1, 8, 8, 4], False)


@pytest.mark.parametrize(
    "candidate,problem",
    [
        # ECA's ops: the pooled gate onto the feature map, its convolution and sigmoid.
        (op("MUL", [RUNTIME_4D, ("float32", [1, 4], False)]), None),
        (op("MEAN", [RUNTIME_4D, ("int32", [2], True)], [("float32", [1, 4], False)]), None),
        (op("LOGISTIC", [("float32", [1, 4], False)], [("float32", [1, 4], False)]), None),
        # The rules' refusals (LiteRT's gpu_compatibility.cc and model_builder.cc).
        (op("CAST", [("uint8", [1, 8, 8, 3], False)]), "CAST uint8 -> float32"),
        (op("CAST", [("int32", [1, 8, 8, 3], False)]), None),
        (op("MUL", [RUNTIME_4D, ("float32", [8, 4], False)]), "broadcast"),
        (op("MEAN", [RUNTIME_4D, ("int32", [2], False)]), "constant axes"),
        (op("RESHAPE", [RUNTIME_4D, ("int32", [2], True)], version=2), "version 2"),
        (op("FULLY_CONNECTED", [RUNTIME_4D], version=12, weightsFormat=0), "version 12"),
        (op("ADD", [RUNTIME_4D, ("int32", [1, 8, 8, 4], False)]), "int32 runtime tensor"),
        (op("SOFTMAX", [RUNTIME_4D], beta=2.0), "beta"),
        (op("WHILE", [RUNTIME_4D]), "not checked"),
    ],
)
def test_gpu_delegate_rules(candidate, problem):
    found = gpu.op_problem(candidate)
    assert found == problem if problem is None else problem in found


def test_tensorflow_gpu_analyzer_still_says_everything_is_compatible(small_model_file, tmp_path):
    """Why eca_keras states the delegate's rules itself: TensorFlow's analyzer calls a file with a
    uint8 -> float32 CAST compatible. The day it reports that CAST, this fails (use it then)."""
    import contextlib
    import io

    from eca_keras.export.tflite import write_tflite

    path = str(tmp_path / "small.tflite")
    write_tflite(keras.saving.load_model(small_model_file), path, 32)
    with open(path, "rb") as handle:
        report = gpu.gpu_report(handle.read())
    assert [entry["op"] for entry in report["incompatible"]] == ["CAST"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        tf.lite.experimental.Analyzer.analyze(model_path=path, gpu_compatibility=True)
    assert "Your model looks compatible with GPU delegate" in printed.getvalue()


# ---- ECA's export lowering --------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,settings",
    [
        ((2, 6, 5, 64), {}),
        ((2, 6, 5, 64), {"padding": "circular", "kernel_size": 5}),
        ((2, 64, 6, 5), {"data_format": "channels_first"}),
        ((2, 7, 32), {"kernel_size": 1}),
        ((2, 3, 4, 5, 16), {"kernel_size": 3}),
    ],
)
def test_export_lowering_computes_the_same_function(shape, settings):
    layer = ECA(**settings)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer.build(shape)
    layer.kernel.assign(np.random.default_rng(1).normal(size=layer.kernel.shape))
    usual = tf.function(lambda t: layer(t))
    with export_lowering():
        lowered = tf.function(lambda t: layer(t)).get_concrete_function(
            tf.TensorSpec(shape, tf.float32)
        )
    np.testing.assert_allclose(lowered(tf.constant(x)), usual(x), rtol=1e-6, atol=1e-6)
    lowered_ops = {node.op for node in lowered.graph.as_graph_def().node}
    assert not lowered_ops & {"Conv2D", "Reshape", "Squeeze", "ExpandDims"}, lowered_ops
    usual_ops = {node.op for node in usual.get_concrete_function(x).graph.as_graph_def().node}
    assert "Reshape" in usual_ops  # outside the block: the usual form


def data_dependent_ops(function):
    """The op types of the nodes of a concrete ``function`` that depend on its first input, the
    image (the converter folds the others, such as the reshapes of a BatchNorm's scale and
    offset or the reads of ECA's kernel, into constants)."""
    graph_def = function.graph.as_graph_def()
    consumers = {}
    for node in graph_def.node:
        for name in node.input:
            consumers.setdefault(name.lstrip("^").split(":")[0], []).append(node)
    image = function.inputs[0].op.name
    reached = [node for node in graph_def.node if node.name == image]
    seen = {image}
    while reached:
        for consumer in consumers.get(reached.pop().name, []):
            if consumer.name not in seen:
                seen.add(consumer.name)
                reached.append(consumer)
    return [node.op for node in graph_def.node if node.name in seen - {image}]


@pytest.mark.parametrize("kernel_size,channels_first", [(1, False), (1, True), (3, False)])
def test_converter_form_writes_a_k1_gate_as_one_scalar_multiply(kernel_size, channels_first):
    """In the TFLite converter's form a ``k = 1`` gate is pooled with keepdims and scaled, no
    reshape or convolution (each would be one more operator per layer in the file); ``k > 1``
    keeps its one convolution. The same function as the usual form, with a BatchNorm's affine."""
    from eca_keras.layers.eca import converter_form

    data_format = "channels_first" if channels_first else "channels_last"
    shape = (2, 16, 6, 5) if channels_first else (2, 6, 5, 16)
    layer = ECA(kernel_size=kernel_size, data_format=data_format)
    layer.build(shape)
    rng = np.random.default_rng(0)
    layer.kernel.assign(rng.normal(size=layer.kernel.shape))
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    affine = tf.constant(rng.normal(size=(2, 16)).astype("float32"))
    usual = tf.function(lambda t: layer(t, affine=affine))
    with converter_form():
        converted = tf.function(lambda t: layer(t, affine=affine)).get_concrete_function(
            tf.TensorSpec(shape, tf.float32)
        )
    np.testing.assert_allclose(converted(x), usual(x), rtol=1e-5, atol=1e-5)
    ops_used = data_dependent_ops(converted)  # the rest is folded
    if kernel_size == 1:
        unwanted = {"Conv2D", "Reshape", "Squeeze", "ExpandDims", "StridedSlice"}
        assert not set(ops_used) & unwanted, ops_used
    else:
        assert ops_used.count("Conv2D") == 1, ops_used


# ---- ONNX from the main job's run ---------------------------------------------------------------


@ON_DIGITS_RUN
@pytest.mark.slow
def test_onnx_from_a_training_run(digits_run, tmp_path):
    import onnx
    import onnxruntime

    from eca_keras import runs
    from eca_keras.evaluate import evaluate_model
    from eca_keras.predict import classify_images

    output = str(tmp_path / "digits.onnx")
    result = eca_export.export(output, model_dir=digits_run, format="onnx")
    assert result.verification["max_relative_difference"] <= 1e-4

    run_config = runs.read_config(digits_run)
    pixels, labels = digits_pixels(runs.eval_config(run_config))
    reference = keras_probabilities(
        keras.saving.load_model(os.path.join(digits_run, "best.keras")), pixels
    )
    session = onnxruntime.InferenceSession(output, providers=["CPUExecutionProvider"])
    (source,), (target,) = session.get_inputs(), session.get_outputs()
    assert (source.name, source.type, source.shape) == (
        "images",
        "tensor(uint8)",
        ["batch", 32, 32, 3],
    )
    assert (target.name, target.shape) == ("probabilities", ["batch", 10])
    for start, stop in ((0, len(pixels)), (0, 1), (5, 12)):  # the batch dimension is dynamic
        probabilities = session.run(None, {"images": pixels[start:stop]})[0]
        expected = reference[start:stop]
        assert np.max(np.abs(probabilities - expected)) <= 1e-4 * np.max(expected)

    stored = session.get_modelmeta().custom_metadata_map
    assert stored["labels"].split("\n") == [str(name) for name in run_config["class_names"]]
    assert json.loads(stored["eca_keras"])["eval"]["input_size"] == 32
    model = onnx.load(output)
    sidecar = artifacts.read_metadata(output)
    assert sidecar["onnx"]["opset"] == {
        entry.domain or "ai.onnx": entry.version for entry in model.opset_import
    } == {"ai.onnx": 17}  # fmt: skip
    counted = {}
    for node in model.graph.node:
        counted[node.op_type] = counted.get(node.op_type, 0) + 1
    assert sidecar["operators"] == dict(sorted(counted.items())) == result.operators
    # ECA's export lowering: no transposes around its multiplies (the input's alone is left).
    assert counted.get("Transpose", 0) <= 1 and "Conv1D" not in counted

    evaluated = evaluate_model(output, "digits")
    assert evaluated["n"] == 359
    assert evaluated["top1"] == pytest.approx(100 * np.mean(reference.argmax(1) == labels))
    picture = str(tmp_path / "digit.png")
    tf.io.write_file(picture, tf.io.encode_png(pixels[3]))
    [(_, predictions)] = classify_images(output, [picture], top=1)
    best = int(reference[3].argmax())
    assert predictions[0][:2] == (str(best), str(run_config["class_names"][best]))
    assert predictions[0][2] == pytest.approx(reference[3, best], abs=1e-4)
