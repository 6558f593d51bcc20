"""weights="imagenet" end to end against a local HTTP server, and checkpoint mismatch errors."""

import contextlib
import dataclasses
import functools
import http.server
import threading

import numpy as np
import pytest
from torch_or_skip import import_torch

torch = import_torch()

from eca_keras.applications import ECAMobileNetV2, ECAResNet18, registry, weights  # noqa: E402
from eca_keras.convert import UnsafeCheckpointError, WeightMismatchError  # noqa: E402
from eca_keras.testing import checkpoints  # noqa: E402
from eca_keras.testing import torch_reference as ref  # noqa: E402

MODEL = "eca_mobilenet_v2"
SIZE = 224  # include_top with ImageNet weights takes the default size, as in keras.applications


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server API)
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder):
    """Serves ``folder`` on 127.0.0.1 (a free port) for the duration of the block."""
    handler = functools.partial(_CountingHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A randomised ECA-MobileNetV2 saved under the release's file name, and its logits."""
    folder = tmp_path_factory.mktemp("hosted")
    torch_model = ref.randomize_(ref.official_mobilenet_v2(), seed=5)
    checkpoints.save_release_checkpoint(
        torch_model, folder / weights.WEIGHTS[MODEL].file_name, arch=MODEL, legacy=True
    )
    images = np.random.default_rng(6).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    with torch.no_grad():
        logits = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    return folder, images, logits


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home"


def logits_of(model, images):
    return model.predict(images, verbose=0)


def assert_matches(got, expected):
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_download_convert_cache_and_offline_reload(release, keras_home, monkeypatch):
    folder, images, expected = release
    with serve(folder) as server:
        monkeypatch.setenv(weights.MIRROR_VARIABLE, f"http://127.0.0.1:{server.server_port}/")
        model = ECAMobileNetV2(weights="imagenet", classifier_activation=None)
        assert server.requests == [f"/{weights.WEIGHTS[MODEL].file_name}"]
    assert_matches(logits_of(model, images), expected)
    converted = keras_home / "models" / "eca_keras" / f"{MODEL}.official.weights.h5"
    assert converted.exists() and (converted.parent / "upstream").is_dir()

    # The server is gone: the second load comes from the converted cache.
    again = ECAMobileNetV2(weights="imagenet", classifier_activation=None)
    np.testing.assert_array_equal(logits_of(again, images), logits_of(model, images))
    backbone = ECAMobileNetV2(weights="imagenet", include_top=False, pooling="avg")
    assert backbone.output_shape == (None, 1280)

    # A corrupted converted file is detected and rebuilt from the cached upstream file.
    converted.write_bytes(b"\0" * 1000)
    with pytest.warns(UserWarning, match="corrupted"):
        rebuilt = ECAMobileNetV2(weights="imagenet", classifier_activation=None)
    assert_matches(logits_of(rebuilt, images), expected)

    # A corrupted upstream file is detected by the hash recorded at download and fetched again.
    upstream = converted.parent / "upstream" / weights.WEIGHTS[MODEL].file_name
    upstream.write_bytes(upstream.read_bytes()[:-100] + b"x" * 100)
    converted.unlink()
    with serve(folder) as server:
        monkeypatch.setenv(weights.MIRROR_VARIABLE, f"http://127.0.0.1:{server.server_port}")
        with pytest.warns(UserWarning, match="do not match the hash recorded"):
            refetched = ECAMobileNetV2(weights="imagenet", classifier_activation=None)
        assert len(server.requests) == 1
    assert_matches(logits_of(refetched, images), expected)


def pin(monkeypatch, model, sha256):
    """Registers ``model``'s default weights with a pinned ``sha256`` for one test."""
    info = registry.model_info(model)
    entry = dataclasses.replace(info.default_weights, sha256=sha256)
    monkeypatch.setitem(registry._MODELS, model, dataclasses.replace(info, weights=(entry,)))


def test_pinned_hash_mismatch_is_reported_and_removed(release, keras_home, monkeypatch):
    folder, _, _ = release
    source = weights.WEIGHTS[MODEL]
    pin(monkeypatch, MODEL, "0" * 64)
    with serve(folder) as server:
        monkeypatch.setenv(weights.MIRROR_VARIABLE, f"http://127.0.0.1:{server.server_port}")
        with pytest.raises(
            weights.WeightsDownloadError, match="does not have the registered sha256"
        ):
            ECAMobileNetV2(weights="imagenet")
    assert not (keras_home / "models" / "eca_keras" / "upstream" / source.file_name).exists()


def test_pinned_hash_accepts_the_right_file_and_refetches_a_bad_cache(
    release, keras_home, monkeypatch
):
    folder, images, expected = release
    source = weights.WEIGHTS[MODEL]
    digest = weights.sha256_of(folder / source.file_name)
    pin(monkeypatch, MODEL, digest)
    cached = keras_home / "models" / "eca_keras" / "upstream" / source.file_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    with serve(folder) as server:
        monkeypatch.setenv(weights.MIRROR_VARIABLE, f"http://127.0.0.1:{server.server_port}")
        model = ECAMobileNetV2(weights="imagenet", classifier_activation=None)
        assert len(server.requests) == 1
    assert weights.sha256_of(cached) == digest
    assert_matches(logits_of(model, images), expected)


def test_mirror_can_be_a_local_folder(release, keras_home, monkeypatch):
    folder, images, expected = release
    monkeypatch.setenv(weights.MIRROR_VARIABLE, str(folder))
    model = ECAMobileNetV2(weights="imagenet", classifier_activation=None)
    assert_matches(logits_of(model, images), expected)


def test_unreachable_host_names_the_url_and_the_mirror_variable(keras_home, monkeypatch):
    with serve(keras_home.parent) as server:
        port = server.server_port  # a port that was free, now closed again
    monkeypatch.setenv(weights.MIRROR_VARIABLE, f"http://127.0.0.1:{port}")
    with pytest.raises(weights.WeightsDownloadError) as error:
        ECAMobileNetV2(weights="imagenet")
    message = str(error.value)
    assert f"http://127.0.0.1:{port}/eca_mobilenetv2_k13.pth.tar" in message
    assert weights.MIRROR_VARIABLE in message
    assert not list(keras_home.rglob("*.pth.tar"))  # nothing half-downloaded is left behind


def test_upstream_url_without_mirror(monkeypatch):
    monkeypatch.delenv(weights.MIRROR_VARIABLE, raising=False)
    assert weights.source_url(weights.WEIGHTS["ecaresnet50d"]) == (
        "https://huggingface.co/timm/ecaresnet50d.miil_in1k/resolve/main/model.safetensors"
    )
    assert "1670rce333c_lyMWFzBlNZoVUvtxbCF_U" in weights.source_url(
        weights.WEIGHTS["eca_resnet50"]
    )


@pytest.fixture(scope="module")
def r18_checkpoint(tmp_path_factory):
    """An ECA-ResNet18 release checkpoint, and one with k=3333 instead of the released 3577."""
    folder = tmp_path_factory.mktemp("r18")
    released = folder / "eca_resnet18_k3577.pth.tar"
    checkpoints.save_release_checkpoint(ref.official_resnet(18), released, arch="eca_resnet18")
    other = folder / "eca_resnet18_k3333.pth.tar"
    checkpoints.save_release_checkpoint(
        ref.official_resnet(18, (3, 3, 3, 3)), other, arch="eca_resnet18"
    )
    return released, other


def test_checkpoint_of_other_kernel_sizes_is_rejected_by_name_and_shape(r18_checkpoint):
    _, other = r18_checkpoint
    with pytest.raises(WeightMismatchError) as error:
        ECAResNet18(weights=str(other))
    message = str(error.value)
    assert "'layer2.0.eca.conv.weight' has shape [1, 1, 3]" in message
    assert "'conv3_block1_eca' needs [1, 1, 5]" in message
    # The same file fits the model built with its kernel sizes.
    ECAResNet18(weights=str(other), kernel_sizes=(3, 3, 3, 3))


def test_missing_and_unused_keys_are_reported(r18_checkpoint, tmp_path):
    released, _ = r18_checkpoint
    state = torch.load(released, weights_only=True)
    wrapped = dict(state["state_dict"])
    del wrapped["module.layer3.1.bn2.running_var"]
    torch.save({"state_dict": wrapped}, tmp_path / "missing.pth")
    with pytest.raises(WeightMismatchError, match=r"lacks 1 key\(s\).*layer3\.1\.bn2\.running_var"):
        ECAResNet18(weights=str(tmp_path / "missing.pth"))
    extra = dict(state["state_dict"], **{"module.head.weight": torch.zeros(3)})
    torch.save({"state_dict": extra}, tmp_path / "extra.pth")
    with pytest.raises(WeightMismatchError, match=r"does not use: head\.weight"):
        ECAResNet18(weights=str(tmp_path / "extra.pth"))
    # Without the head, the classifier keys are expected to go unused.
    ECAResNet18(weights=str(released), include_top=False)


def test_a_malicious_checkpoint_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"state_dict": {"conv1.weight": Payload()}}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError):
        ECAResNet18(weights=str(tmp_path / "evil.pth"))
    assert not (tmp_path / "pwned").exists()
