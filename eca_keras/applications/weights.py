"""The ImageNet weight registry (data) and ``weights=`` loading for every constructor.

Each entry names where an upstream checkpoint is hosted, its hash where known, its format, the
published accuracy, and the evaluation preprocessing that reproduces that accuracy.

``weights="imagenet"`` downloads the upstream file once with ``keras.utils.get_file`` (progress
bar, cache under ``$KERAS_HOME/models/eca_keras``), checks its sha256 when the registry pins one,
converts it to Keras weights once, and caches the converted ``.weights.h5``; later calls load that
file without touching the network. ``ECA_KERAS_WEIGHTS_MIRROR`` (a base URL or a local folder)
replaces every upstream host: the file is read from ``<mirror>/<file name>``.
"""

import dataclasses
import hashlib
import os
import pathlib
import warnings

import keras

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
MIRROR_VARIABLE = "ECA_KERAS_WEIGHTS_MIRROR"
CACHE_SUBDIR = os.path.join("models", "eca_keras")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How the published accuracy was measured: resize to ``input_size / crop_pct``, center crop."""

    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple = IMAGENET_MEAN_STD[0]
    std: tuple = IMAGENET_MEAN_STD[1]


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """One hosted checkpoint of one model."""

    model: str
    tag: str  # "official" for BangguWu/ECANet, timm's pretrained tag otherwise
    file_name: str  # also the name looked up under ECA_KERAS_WEIGHTS_MIRROR
    url: str
    format: str  # "official_pth" (torch pickle) or "timm_safetensors"
    top1: float
    top5: float | None
    eval: EvalConfig
    sha256: str | None = None  # None: not pinned yet (the upstream host publishes none)

    @property
    def name(self):
        return f"{self.model}.{self.tag}"


def _google_drive(file_id):
    # The usercontent endpoint with confirm=t skips Drive's virus-scan page for large files.
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


def _official(model, file_name, drive_id, top1, top5):
    return WeightSource(
        model,
        "official",
        file_name,
        _google_drive(drive_id),
        "official_pth",
        top1,
        top5,
        EvalConfig(),
    )


def _timm(model, tag, top1, input_size=224, crop_pct=0.875):
    arch = f"{model}.{tag}"
    return WeightSource(
        model,
        tag,
        f"{arch}.safetensors",
        f"https://huggingface.co/timm/{arch}/resolve/main/model.safetensors",
        "timm_safetensors",
        top1,
        None,
        EvalConfig(input_size, crop_pct, "bicubic"),
    )


WEIGHTS = {
    source.model: source
    for source in (
        _official(
            "eca_resnet18",
            "eca_resnet18_k3577.pth.tar",
            "1LMRFRTyzVifGBi2MUpTuYEWW44S8mwyl",
            70.92,
            89.93,
        ),
        _official(
            "eca_resnet34",
            "eca_resnet34_k3357.pth.tar",
            "15LV5Jkea3GPzvLP5__H7Gg88oNQUxBDE",
            74.21,
            91.83,
        ),
        _official(
            "eca_resnet50",
            "eca_resnet50_k3557.pth.tar",
            "1670rce333c_lyMWFzBlNZoVUvtxbCF_U",
            77.42,
            93.62,
        ),
        _official(
            "eca_resnet101",
            "eca_resnet101_k3357.pth.tar",
            "1b5FQ8yDFnZ_UhvWT9txmjI_LjbKkgnvC",
            78.65,
            94.34,
        ),
        _official(
            "eca_resnet152",
            "eca_resnet152_k3357.pth.tar",
            "1_bYnaOg9ptsILC_iC7uQ5Izv-u2rjYG5",
            78.92,
            94.55,
        ),
        _official(
            "eca_mobilenet_v2",
            "eca_mobilenetv2_k13.pth.tar",
            "1FxzeXPg1SJQZzVVH4HRjMeq_SVMfidUm",
            72.56,
            90.81,
        ),
        _timm("ecaresnet26t", "ra2_in1k", 78.89, input_size=256),
        _timm("ecaresnet50d", "miil_in1k", 80.63),
        _timm("ecaresnet50t", "ra2_in1k", 81.45, input_size=256),
        _timm("ecaresnetlight", "miil_in1k", 80.45),
        _timm("ecaresnet101d", "miil_in1k", 82.18),
        _timm("ecaresnet269d", "ra2_in1k", 84.72, input_size=320, crop_pct=0.95),
    )
}


def weight_source(model_name):
    """The registry entry of ``model_name``'s ImageNet weights."""
    try:
        return WEIGHTS[model_name]
    except KeyError:
        raise ValueError(
            f"No ImageNet weights are registered for {model_name!r}. "
            f"Models with weights: {', '.join(sorted(WEIGHTS))}."
        ) from None


class WeightsDownloadError(OSError):
    """Weights could not be fetched or failed their hash check."""


def cache_dir():
    """``$KERAS_HOME/models/eca_keras`` (``~/.keras`` when ``KERAS_HOME`` is unset)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, CACHE_SUBDIR)


def source_url(source):
    """Where ``source`` is fetched from: the upstream URL, or ``<mirror>/<file name>``."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    if not mirror:
        return source.url
    if os.path.isdir(mirror):
        return pathlib.Path(mirror, source.file_name).resolve().as_uri()
    return f"{mirror.rstrip('/')}/{source.file_name}"


def sha256_of(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _recorded_hash_ok(path):
    """Checks ``path`` against the ``.sha256`` written beside it when it was cached."""
    record = f"{path}.sha256"
    if not (os.path.exists(path) and os.path.exists(record)):
        return False
    with open(record) as handle:
        return handle.read().strip() == sha256_of(path)


def _record_hash(path):
    digest = sha256_of(path)
    with open(f"{path}.sha256", "w") as handle:
        handle.write(digest + "\n")
    return digest


def _discard(path, reason):
    warnings.warn(f"{reason}: {path}. Removing it and fetching it again.", stacklevel=3)
    for stale in (path, f"{path}.sha256"):
        if os.path.exists(stale):
            os.remove(stale)


def download_upstream(source):
    """Fetches ``source``'s upstream file into the cache (once) and returns its path.

    With a pinned sha256 the file is checked against it; without one, the hash seen at download
    time is recorded beside the file, so later corruption of the cache is still detected.
    """
    folder = os.path.join(cache_dir(), "upstream")
    # get_file falls back to /tmp/.keras when the cache folder does not exist yet: create it.
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, source.file_name)
    if os.path.exists(path) and not (source.sha256 or _recorded_hash_ok(path)):
        _discard(path, "Cached upstream weights do not match the hash recorded at download")
    url = source_url(source)
    try:
        path = keras.utils.get_file(
            fname=source.file_name,
            origin=url,
            file_hash=source.sha256,
            hash_algorithm="sha256",
            cache_subdir="upstream",
            cache_dir=cache_dir(),
        )
    except ValueError as error:  # raised by get_file on a hash mismatch after downloading
        if os.path.exists(path):
            os.remove(path)
        raise WeightsDownloadError(
            f"{source.file_name} downloaded from {url} does not have the registered sha256 "
            f"{source.sha256}; the file was removed. ({error})"
        ) from error
    except Exception as error:
        raise WeightsDownloadError(
            f"Could not download the {source.name} weights from {url}: {error}. If this machine "
            f"cannot reach that host, put {source.file_name} in a folder (or on a server) it can "
            f"reach and set {MIRROR_VARIABLE} to that folder or base URL."
        ) from error
    if not source.sha256 and not os.path.exists(f"{path}.sha256"):
        _record_hash(path)
    return path


def convert_checkpoint(model_name, checkpoint, output):
    """Converts an upstream checkpoint of ``model_name`` into a Keras ``.weights.h5`` file.

    The file holds the full model (with its 1000-class head) and loads with
    ``get_model(model_name, weights=output)`` for any ``include_top``/``pooling``. It is written
    to a temporary name and renamed, so a failed conversion leaves nothing half-written.
    Returns ``(output, sha256, report)``.
    """
    from eca_keras.applications.registry import get_model
    from eca_keras.convert import apply_checkpoint

    output = os.fspath(output)
    if not output.endswith(".weights.h5"):
        raise ValueError(f"The output file name must end in '.weights.h5'. Received: {output}")
    model = get_model(model_name, weights=None)
    report = apply_checkpoint(model, checkpoint)
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".partial-{os.getpid()}-{os.path.basename(output)}")
    try:
        model.save_weights(temporary)
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return output, sha256_of(output), report


def imagenet_weights_path(model_name):
    """The converted ImageNet ``.weights.h5`` of ``model_name``, fetched and converted if needed."""
    source = weight_source(model_name)
    converted = os.path.join(cache_dir(), f"{source.name}.weights.h5")
    if os.path.exists(converted):
        if _recorded_hash_ok(converted):
            return converted
        _discard(converted, "Cached converted weights are corrupted")
    upstream = download_upstream(source)
    print(f"Converting {source.file_name} to Keras weights (once): {converted}", flush=True)
    try:
        convert_checkpoint(model_name, upstream, converted)
    except Exception:
        # A damaged upstream file must not stay in the cache to fail the same way next time.
        _discard(upstream, "The cached upstream file could not be converted")
        raise
    _record_hash(converted)
    return converted


def is_upstream_checkpoint(path):
    """True for PyTorch / safetensors files (converted on load), False for Keras weights."""
    return not os.fspath(path).endswith((".h5", ".keras"))


def load_model_weights(model, model_name, weights):
    """Loads ``weights`` ("imagenet", a ``.weights.h5``, an upstream checkpoint) into ``model``."""
    if weights == "imagenet":
        model.load_weights(imagenet_weights_path(model_name))
        return
    weights = os.fspath(weights)
    if is_upstream_checkpoint(weights):
        from eca_keras.convert import apply_checkpoint

        apply_checkpoint(model, weights)
    else:
        model.load_weights(weights)
