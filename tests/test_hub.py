"""keras-hub presets: published, reloaded by keras-hub in fresh processes, fetched from a stand-in
of the Hugging Face hub (online, offline, corrupted cache), and the failures of Google Drive."""

import contextlib
import functools
import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from hub_standin import HubStandIn
from PIL import Image

from eca_keras import downloads, runs
from eca_keras.applications import weights
from eca_keras.files import sha256_of
from eca_keras.hub.publish import publish
from eca_keras.testing import references
from eca_keras.testing import torch_reference as ref

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_python(code, env=None, timeout=600):
    """Runs ``code`` in a fresh interpreter (the hub's variables are read at import); returns
    its stdout's last line as JSON."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "KERAS_"))}
    environment.update({"TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_DISABLE_TELEMETRY": "1"})
    environment.update(env or {})
    prelude = "try:\n    import triton\nexcept ImportError:\n    pass\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def relative_error(got, expected):
    return float(np.abs(np.asarray(got) - expected).max() / np.abs(expected).max())


# --------------------------------------------------------------------------- publish


@pytest.mark.parametrize("name", ["eca_resnet18", "ecaresnet26t"])
def test_published_preset_reloads_in_a_fresh_process_and_matches_pytorch(name, tmp_path):
    """An upstream checkpoint (the official release's layout, timm's own model) -> publish ->
    keras-hub's ImageClassifier.from_preset in a new process: logits equal PyTorch's (float64)
    on the images the preset's own preprocessor prepared; the card and manifest are right."""
    torch.manual_seed(0)
    torch_model = references.randomize(references.reference_model(name), seed=2)
    suffix = ".pth.tar" if references.registry.model_info(name).origin == "official" else ".st"
    checkpoint = references.save_checkpoint(name, torch_model, tmp_path / f"upstream{suffix}")
    preset = tmp_path / "preset"
    result = publish(name, str(checkpoint), str(preset), log=lambda line: None)
    assert result.parity <= 1e-5

    manifest = downloads.read_manifest(preset)
    files = sorted(
        os.path.relpath(os.path.join(root, f), preset)
        for root, _, names in os.walk(preset)
        for f in names
    )
    assert sorted(manifest) == [f for f in files if f != "SHA256SUMS"]
    assert all(sha256_of(preset / f) == digest for f, digest in manifest.items())
    assert {"config.json", "model.weights.h5", "task.json", "image_converter.json"} <= set(files)
    card = (preset / "README.md").read_text()
    assert sha256_of(checkpoint) in card and f"{result.parity:.1e}" in card
    assert f"`{name}`" in card
    if name == "eca_resnet18":  # what publish wrote, it may replace (and only with --overwrite)
        with pytest.raises(ValueError, match="--overwrite"):
            publish(name, str(checkpoint), str(preset), log=lambda line: None)
        publish(name, str(checkpoint), str(preset), overwrite=True, log=lambda line: None)
        assert set(downloads.read_manifest(preset)) == set(manifest)  # replaced, not added to

    pixels = np.random.default_rng(3).integers(0, 256, (2, 290, 250, 3)).astype("uint8")
    np.save(tmp_path / "pixels.npy", pixels)
    child = run_python(
        f"""
import json, numpy as np
import eca_keras, keras_hub
classifier = keras_hub.models.ImageClassifier.from_preset({str(preset)!r})
pixels = np.load({str(tmp_path / "pixels.npy")!r})
np.save({str(tmp_path / "prepared.npy")!r}, np.asarray(classifier.preprocessor(pixels)))
np.save({str(tmp_path / "logits.npy")!r}, classifier.predict(pixels, verbose=0))
print(json.dumps({{"classifier": type(classifier).__name__,
                  "backbone": type(classifier.backbone).__name__}}))
"""
    )
    assert child == {"classifier": "ECAImageClassifier", "backbone": "ECABackbone"}
    prepared = np.load(tmp_path / "prepared.npy")
    size = weights.weight_source(name).eval.input_size
    assert prepared.shape == (2, size, size, 3)
    with torch.no_grad():
        expected = torch_model.double()(torch.from_numpy(prepared.transpose(0, 3, 1, 2)).double())
    assert relative_error(np.load(tmp_path / "logits.npy"), expected.numpy()) < 1e-4


def test_publish_refuses_to_replace_what_it_did_not_write(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        publish("eca_mobilenet_v2", "imagenet", str(folder), overwrite=False)
    with pytest.raises(ValueError, match="refusing to replace"):
        publish("eca_mobilenet_v2", "imagenet", str(folder), overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="hf://org/name"):
        publish("eca_mobilenet_v2", "imagenet", str(tmp_path / "x"), upload="s3://bucket")

    # An export's SavedModel also carries an eca_keras.json; a preset with a file of the user's
    # added is not publish's alone: neither is replaced.
    exported = tmp_path / "saved_model"
    exported.mkdir()
    for name in ("eca_keras.json", "saved_model.pb"):
        (exported / name).write_text("{}")
    extended = tmp_path / "extended"
    extended.mkdir()
    (extended / "eca_keras.json").write_text("{}")
    downloads.write_manifest(extended)
    (extended / "notes.txt").write_text("keep me")
    for kept in (exported, extended):
        before = sorted(os.listdir(kept))
        with pytest.raises(ValueError, match="refusing to replace"):
            publish("eca_mobilenet_v2", "imagenet", str(kept), overwrite=True)
        assert sorted(os.listdir(kept)) == before


# --------------------------------------------------------------------------- the image converter


def pil_eval_transform(image, size, crop_pct, interpolation, mean, std):
    """timm's / torchvision's evaluation transform, written independently with PIL: Resize(short
    side = floor(size / crop_pct)), CenterCrop(size), ToTensor, Normalize."""
    scale = int(size / crop_pct)
    width, height = image.size
    if width <= height:
        new = (scale, int(scale * height / width))
    else:
        new = (int(scale * width / height), scale)
    method = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation]
    resized = image.resize(new, method)
    top = int(round((new[1] - size) / 2.0))
    left = int(round((new[0] - size) / 2.0))
    cropped = resized.crop((left, top, left + size, top + size))
    pixels = np.asarray(cropped, "float32") / 255.0
    return (pixels - np.asarray(mean, "float32")) / np.asarray(std, "float32")


def real_photos():
    """The bundled photograph, cut and scaled to several sizes and aspect ratios."""
    photo = Image.open(ROOT / "eca_keras" / "data" / "flower.jpg").convert("RGB")
    return [
        photo,
        photo.crop((0, 0, 256, 171)),  # landscape
        photo.crop((40, 0, 137, 256)),  # tall and narrow
        photo.resize((500, 375), Image.LANCZOS),
        photo.crop((10, 20, 239, 250)).resize((343, 256), Image.LANCZOS),  # odd crop offset
    ]


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_image_converter_matches_an_independent_pil_transform(interpolation):
    """Against PIL over photos of several shapes: 97% of the values equal, none more than 6
    levels of 255 apart. (Pillow sometimes runs its vertical pass first, which the converter does
    not reproduce: the one-pixel downscale 97x256 -> 96x253 differs in ~18% of its values.)"""
    from eca_keras.hub import ECAImageConverter

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    worst, equal, total = 0.0, 0, 0
    for size, crop_pct in ((224, 0.875), (160, 0.95), (96, 1.0)):
        converter = ECAImageConverter(size, crop_pct, interpolation, mean, std)
        for photo in real_photos():
            got = np.asarray(converter(np.asarray(photo)))
            expected = pil_eval_transform(photo, size, crop_pct, interpolation, mean, std)
            assert got.shape == expected.shape == (size, size, 3)
            difference = np.abs(got - expected) * np.asarray(std) * 255  # in pixel levels
            worst = max(worst, float(difference.max()))
            equal += int(np.sum(difference < 0.01))
            total += difference.size
    assert worst <= 6.0
    assert equal / total >= 0.97, equal / total


# --------------------------------------------------------------------------- hub handles


@pytest.fixture(scope="module")
def mobilenet_preset(tmp_path_factory):
    """A published ECA-MobileNetV2 preset of random weights, and its logits on fixed inputs."""
    from eca_keras.applications import ECAMobileNetV2

    folder = tmp_path_factory.mktemp("preset")
    model = ECAMobileNetV2(weights=None, classifier_activation=None)
    path = str(folder / "random.weights.h5")
    model.save_weights(path)
    preset = folder / "preset"
    publish("eca_mobilenet_v2", path, str(preset), log=lambda line: None)
    inputs = np.random.default_rng(4).normal(size=(2, 224, 224, 3)).astype("float32")
    np.save(folder / "inputs.npy", inputs)
    return preset, folder / "inputs.npy", model.predict(inputs, verbose=0)


LOAD_FROM_HUB = """
import json, numpy as np
from eca_keras.applications import ECAMobileNetV2
model = ECAMobileNetV2(weights={handle!r}, classifier_activation=None)
logits = model.predict(np.load({inputs!r}), verbose=0)
print(json.dumps(logits.tolist()))
"""


def test_weights_from_the_hub_online_offline_and_after_corruption(mobilenet_preset, tmp_path):
    preset, inputs, expected = mobilenet_preset
    env = {"HF_HOME": str(tmp_path / "hf"), "KERAS_HOME": str(tmp_path / "keras")}
    handle = "hf://eca-tests/mobilenet"
    with HubStandIn() as hub:
        repository = hub.add("eca-tests/mobilenet", preset)
        env["HF_ENDPOINT"] = hub.url
        code = LOAD_FROM_HUB.format(handle=handle, inputs=str(inputs))
        np.testing.assert_allclose(run_python(code, env), expected, rtol=1e-5, atol=1e-5)
        weights_blob = f"/cdn-lfs/{repository.sha256['model.weights.h5']}"
        assert ("GET", weights_blob) in hub.requests
        pinned = LOAD_FROM_HUB.format(handle=f"{handle}@{repository.commit}", inputs=str(inputs))
        np.testing.assert_allclose(run_python(pinned, env), expected, rtol=1e-5, atol=1e-5)

    # The hub is gone: offline, from the shared cache.
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    np.testing.assert_allclose(run_python(code, offline), expected, rtol=1e-5, atol=1e-5)

    # A corrupted cached file is detected by the published sha256 and fetched again.
    blob = next((tmp_path / "hf").rglob(f"blobs/{repository.sha256['model.weights.h5']}"))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\0" * 4096
    blob.write_bytes(bytes(data))
    with HubStandIn() as hub:
        hub.add("eca-tests/mobilenet", preset)
        env["HF_ENDPOINT"] = hub.url
        code = LOAD_FROM_HUB.format(handle=handle, inputs=str(inputs))
        np.testing.assert_allclose(run_python(code, env), expected, rtol=1e-5, atol=1e-5)
        assert ("GET", weights_blob) in hub.requests
    assert sha256_of(blob) == repository.sha256["model.weights.h5"]


def test_predict_and_evaluate_open_hub_presets(mobilenet_preset, tmp_path):
    """The CLI takes a preset handle wherever it takes a model (here offline from a folder)."""
    preset, _, _ = mobilenet_preset
    picture = ROOT / "eca_keras" / "data" / "flower.jpg"
    done = subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", "predict", "--model", str(preset), str(picture)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == str(picture) and len(lines) == 6


def test_timm_weights_come_through_huggingface_hub_with_their_revision(tmp_path):
    """weights="imagenet" of a timm model: fetched by huggingface_hub from (a stand-in of) the
    hub, converted once, the revision recorded beside the cache; logits equal timm's."""
    import timm

    name = "ecaresnet26t"
    entry = weights.weight_source(name)
    torch.manual_seed(0)
    timm_model = ref.randomize_(timm.create_model(name), seed=3)
    repo = tmp_path / "repo"
    repo.mkdir()
    references.save_checkpoint(name, timm_model, repo / "model.safetensors")
    inputs = np.random.default_rng(5).normal(size=(1, 256, 256, 3)).astype("float32")
    np.save(tmp_path / "inputs.npy", inputs)
    with torch.no_grad():
        expected = timm_model.double()(torch.from_numpy(inputs.transpose(0, 3, 1, 2)).double())
    keras_home = tmp_path / "keras"
    with HubStandIn() as hub:
        repository = hub.add(entry.hf_repo, repo)
        code = f"""
import json, numpy as np
from eca_keras.applications import ECAResNet26T
model = ECAResNet26T(weights="imagenet", classifier_activation=None)
print(json.dumps(model.predict(np.load({str(tmp_path / "inputs.npy")!r}), verbose=0).tolist()))
"""
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
               "KERAS_HOME": str(keras_home)}  # fmt: skip
        got = run_python(code, env)
    assert relative_error(got, expected.numpy()) < 1e-4
    converted = keras_home / "models" / "eca_keras" / f"{entry.name}.weights.h5"
    record = json.loads(pathlib.Path(f"{converted}.source.json").read_text())
    assert record["revision"] == repository.commit
    assert record["upstream"] == f"hf://{entry.hf_repo}"
    assert record["upstream_sha256"] == repository.sha256["model.safetensors"]


# --------------------------------------------------------------------------- Google Drive pages


QUOTA_PAGE = b"""<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>
<body><p>Too many users have viewed or downloaded this file recently. Please try accessing the
file again later.</p></body></html>"""
SCAN_PAGE = b"""<html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p><form action="/download">
<input type="submit" value="Download anyway"></form></body></html>"""


@contextlib.contextmanager
def serve(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("page,reason", [(QUOTA_PAGE, "quota"), (SCAN_PAGE, "virus")])
def test_a_drive_page_instead_of_the_checkpoint_is_a_clear_message(
    page, reason, tmp_path, monkeypatch
):
    from eca_keras.applications import ECAMobileNetV2

    entry = weights.weight_source("eca_mobilenet_v2")
    hosted = tmp_path / "hosted"
    hosted.mkdir()
    (hosted / entry.file_name).write_bytes(page)
    keras_home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    with serve(hosted) as url:
        monkeypatch.setenv(weights.MIRROR_VARIABLE, url)
        with pytest.raises(weights.WeightsDownloadError) as error:
            ECAMobileNetV2(weights="imagenet")
    message = str(error.value)
    assert reason in message and "Nothing was cached" in message
    assert "https://pan.baidu.com/s/143B03YTGE2ogkPoCj3IorQ (extraction code atpt)" in message
    assert weights.MIRROR_VARIABLE in message and "weights=" in message
    assert "format" not in message.lower()  # never a checkpoint-format error
    leftovers = [p for p in keras_home.rglob("*") if p.is_file()] if keras_home.exists() else []
    assert not leftovers


# --------------------------------------------------------------------------- fine-tuned runs


@pytest.mark.slow
@pytest.mark.xdist_group("digits_run")
def test_a_published_training_run_scores_its_own_validation_accuracy(digits_run, tmp_path):
    preset = tmp_path / "digits_preset"
    result = publish(None, digits_run, str(preset), log=lambda line: None)
    info = weights.read_preset_info(preset)
    assert info["num_classes"] == 10 and info["class_names"] == [str(i) for i in range(10)]
    assert "best validation accuracy" in (preset / "README.md").read_text()
    assert result.architecture == "eca_mobilenet_v2"
    child = run_python(
        f"""
import json, numpy as np
import eca_keras, keras_hub
from eca_keras.data.classification import load_splits
classifier = keras_hub.models.ImageClassifier.from_preset({str(preset)!r})
pixels, labels = [], []
for image, label in load_splits("digits").validation:
    pixels.append(image.numpy()); labels.append(int(label))
predicted = classifier.predict(np.stack(pixels), verbose=0).argmax(axis=1)
print(json.dumps({{"accuracy": float(np.mean(predicted == np.array(labels))),
                  "images": len(labels)}}))
"""
    )
    best = runs.best_so_far(digits_run)
    assert abs(child["accuracy"] - best) <= 1.0 / child["images"] + 1e-9


def test_registered_weights_have_preset_names_built_once(tmp_path, monkeypatch):
    """ECAImageClassifier.from_preset("eca_mobilenet_v2_imagenet"): the release checkpoint is
    fetched (from a mirror here), converted, written as a preset once, and loaded; its logits
    are the PyTorch model's."""
    from eca_keras.hub import ECAImageClassifier, preset_names
    from eca_keras.testing import checkpoints

    names = preset_names()
    assert {"eca_resnet50_imagenet", "ecaresnet50d_miil_in1k", "ecaresnet50t_a1_in1k"} <= set(names)
    assert len(names) == len(references.registry.weight_entries())
    entry = names["eca_mobilenet_v2_imagenet"]
    torch_model = ref.randomize_(ref.official_mobilenet_v2(), seed=7)
    hosted = tmp_path / "hosted"
    hosted.mkdir()
    checkpoints.save_release_checkpoint(torch_model, hosted / entry.file_name, arch=entry.model)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv(weights.MIRROR_VARIABLE, str(hosted))
    classifier = ECAImageClassifier.from_preset("eca_mobilenet_v2_imagenet")
    folder = tmp_path / "keras" / "models" / "eca_keras" / "presets" / "eca_mobilenet_v2_imagenet"
    assert not downloads.damaged_files(folder)
    pixels = np.random.default_rng(8).integers(0, 256, (2, 240, 260, 3)).astype("uint8")
    prepared = np.asarray(classifier.preprocessor(pixels))
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(prepared.transpose(0, 3, 1, 2))).numpy()
    assert relative_error(classifier.predict(pixels, verbose=0), expected) < 1e-4
    (hosted / entry.file_name).unlink()  # the second call needs no upstream file
    again = ECAImageClassifier.from_preset("eca_mobilenet_v2_imagenet")
    np.testing.assert_array_equal(
        again.predict(pixels, verbose=0), classifier.predict(pixels, verbose=0)
    )
