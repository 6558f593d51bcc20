"""``weights=`` for every constructor: download, hash, cache and convert registered weights once.

The weight entries themselves are rows of the family modules (:class:`registry.WeightEntry`: where
an upstream checkpoint is hosted, its hash where known, its format, the published accuracy, the
evaluation transform).

``weights="imagenet"`` downloads the upstream file once with ``keras.utils.get_file`` (progress
bar, cache under ``$KERAS_HOME/models/eca_keras``), checks its sha256 when the registry pins one,
converts it to Keras weights once, and caches the converted ``.weights.h5``; later calls load that
file without touching the network. ``ECA_KERAS_WEIGHTS_MIRROR`` (a base URL or a local folder)
replaces every upstream host: the file is read from ``<mirror>/<file name>``.
"""

import hashlib
import os
import pathlib
import warnings

from eca_keras.applications import registry
from eca_keras.preprocessing import EvalConfig  # noqa: F401 (its home before 0.2)

MIRROR_VARIABLE = "ECA_KERAS_WEIGHTS_MIRROR"
CACHE_SUBDIR = os.path.join("models", "eca_keras")


def __getattr__(name):
    if name == "WEIGHTS":  # {model: its default WeightEntry}, as the registry holds them now
        return {
            model: registry.model_info(model).default_weights
            for model in registry.list_models()
            if registry.model_info(model).weights
        }
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def weight_source(model_name):
    """The default ImageNet :class:`~registry.WeightEntry` of ``model_name``."""
    info = registry.model_info(model_name)
    if not info.weights:
        with_weights = [
            name for name in registry.list_models() if registry.model_info(name).weights
        ]
        raise ValueError(
            f"No ImageNet weights are registered for {model_name!r}. "
            f"Models with weights: {', '.join(sorted(with_weights))}."
        )
    return info.default_weights


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
    import keras

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


def check_weights_output(output):
    """Refuses an output name Keras cannot save weights to, before any conversion is done."""
    output = os.fspath(output)
    if not output.endswith(".weights.h5"):
        raise ValueError(f"The output file name must end in '.weights.h5'. Received: {output}")
    folder = os.path.dirname(os.path.abspath(output))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"{folder} is a file, not a folder for {os.path.basename(output)}")
    if os.path.isdir(output):
        raise ValueError(f"{output} is a folder")
    return output


def convert_checkpoint(model_name, checkpoint, output):
    """Converts an upstream checkpoint of ``model_name`` into a Keras ``.weights.h5`` file.

    The file holds the full model (with its 1000-class head) and loads with
    ``get_model(model_name, weights=output)`` for any ``include_top``/``pooling``. It is written
    to a temporary name and renamed, so a failed conversion leaves nothing half-written.
    Returns ``(output, sha256, report)``.
    """
    from eca_keras.convert import apply_checkpoint

    output = check_weights_output(output)
    info = registry.model_info(model_name)
    model = info.constructor(weights=None)
    report = apply_checkpoint(model, checkpoint, family=info.family)
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


def imagenet_weights_path(model_name, tag=None):
    """The converted ``.weights.h5`` of ``model_name``'s registered weights ``tag`` (default: its
    ``"imagenet"`` entry), fetched and converted if needed."""
    source = (
        weight_source(model_name)
        if tag is None
        else registry.model_info(model_name).weight_entry(tag)
    )
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
    """Loads ``weights`` into ``model``: ``"imagenet"`` or another registered tag of
    ``model_name``, a ``.weights.h5``, or an upstream checkpoint (converted on the fly)."""
    info = registry.model_info(model_name)
    if weights == "imagenet":
        model.load_weights(imagenet_weights_path(model_name))
        return
    if isinstance(weights, str) and any(weights in (e.tag, e.name) for e in info.weights):
        model.load_weights(imagenet_weights_path(model_name, weights))
        return
    weights = os.fspath(weights)
    if is_upstream_checkpoint(weights):
        from eca_keras.convert import apply_checkpoint

        apply_checkpoint(model, weights, family=info.family)
    else:
        load_keras_weights(model, weights, model_name)


def load_keras_weights(model, path, model_name):
    """``model.load_weights(path)``, or one line saying the file holds another model's weights
    (instead of Keras' warning per layer and its dump of the first mismatching arrays)."""
    import re

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
            error = None
        except ValueError as raised:
            error = str(raised)
    skipped = [w for w in caught if "Skipping" in str(w.message) or "could not" in str(w.message)]
    if error is None and not skipped:
        for warning in caught:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        return
    detail = ""
    if error:
        count = re.search(r"A total of (\d+) objects could not be loaded", error)
        layer = re.search(r"for object <\w+ name=([^,>]+)", error)
        shapes = re.search(
            r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", error
        )
        if count:
            detail = f"{count[1]} layer(s) do not match"
        if layer and shapes:
            detail += f" (first: {layer[1]} expects {shapes[1]}, the file has {shapes[2]})"
        detail = detail or error.splitlines()[0][:200]
    else:
        detail = f"{len(skipped)} parts of the model found no weights in it"
    raise ValueError(
        f"{path} does not hold weights of this {model_name}: {detail}. Are they the weights of "
        "another model, or of another `classes` / `input_shape`?"
    )
