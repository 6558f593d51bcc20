"""``weights=`` for every constructor: registered weights fetched, checked, converted and cached
once; hub presets; files.

The weight entries themselves are rows of the family modules (:class:`registry.WeightEntry`: where
an upstream checkpoint is hosted, its hash where known, its format, the published accuracy, the
evaluation transform).

``weights="imagenet"`` (or a registered tag) fetches the upstream file once: timm's from the
Hugging Face hub through ``huggingface_hub`` (its shared cache, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``), the official release's from Google Drive (timeouts, bounded retries, a web
page where a checkpoint was expected is refused with the ways out). The file is checked against
its pinned sha256 (or the one recorded at the first download), converted to Keras weights once,
and both are cached under ``$KERAS_HOME/models/eca_keras``, with the revision and hash they came
from recorded beside them. ``ECA_KERAS_WEIGHTS_MIRROR`` (a base URL or a local folder) replaces
every upstream host: the file is read from ``<mirror>/<file name>``.

``weights="hf://org/name[@revision]"`` (or ``kaggle://...``, or a preset folder) loads a preset
published with ``eca-keras publish`` (needs ``keras-hub``: ``pip install 'eca-keras[hub]'``).
"""

import json
import os
import pathlib
import warnings

from eca_keras import downloads
from eca_keras.applications import registry
from eca_keras.files import save_atomically, sha256_of, write_atomically
from eca_keras.preprocessing import EvalConfig  # noqa: F401 (its home before 0.2)

MIRROR_VARIABLE = "ECA_KERAS_WEIGHTS_MIRROR"
CACHE_SUBDIR = os.path.join("models", "eca_keras")
PRESET_INFO = "eca_keras.json"  # a preset's own description (architecture, classes, transform)


class WeightsDownloadError(OSError):
    """Weights could not be fetched or failed their hash check."""


def __getattr__(name):
    if name == "WEIGHTS":  # {model: its default WeightEntry}, as the registry holds them now
        return {
            model: registry.model_info(model).default_weights
            for model in registry.list_models()
            if registry.model_info(model).weights
        }
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def weight_source(model_name, tag=None):
    """The registered :class:`~registry.WeightEntry` of ``model_name`` (default: ``imagenet``)."""
    info = registry.model_info(model_name)
    if not info.weights:
        with_weights = [
            name for name in registry.list_models() if registry.model_info(name).weights
        ]
        raise ValueError(
            f"No ImageNet weights are registered for {model_name!r}. "
            f"Models with weights: {', '.join(sorted(with_weights))}."
        )
    return info.weight_entry(tag)


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


# --------------------------------------------------------------------------- the cache


def _recorded_hash_ok(path):
    """Checks ``path`` against the ``.sha256`` written beside it when it was cached."""
    record = f"{path}.sha256"
    if not (os.path.exists(path) and os.path.exists(record)):
        return False
    with open(record) as handle:
        return handle.read().strip() == sha256_of(path)


def _record(path, provenance=None):
    """Writes ``<path>.sha256`` (and ``<path>.source.json``: where and which revision it came
    from); returns the sha256."""
    digest = sha256_of(path)
    write_atomically(f"{path}.sha256", digest + "\n")
    if provenance is not None:
        record = {**provenance, "sha256": digest}
        write_atomically(f"{path}.source.json", json.dumps(record, indent=2) + "\n")
    return digest


def provenance(path):
    """What ``<path>.source.json`` recorded (url or repository, revision, sha256), or ``{}``."""
    record = f"{path}.source.json"
    if not os.path.isfile(record):
        return {}
    with open(record) as handle:
        return json.load(handle)


def _discard(path, reason):
    warnings.warn(f"{reason}: {path}. Removing it and fetching it again.", stacklevel=3)
    for stale in (path, f"{path}.sha256", f"{path}.source.json"):
        if os.path.exists(stale):
            os.remove(stale)


# --------------------------------------------------------------------------- fetching


def download_upstream(source):
    """Fetches ``source``'s upstream file (once); returns ``(local path, revision)`` (the hub
    commit it came from, None for other hosts).

    With a pinned sha256 the file is checked against it; without one, the hash seen at download
    time is recorded beside the file, so later corruption of the cache is still detected.
    """
    if source.hf_repo and not os.environ.get(MIRROR_VARIABLE):
        return _download_from_hub(source)
    folder = os.path.join(cache_dir(), "upstream")
    path = os.path.join(folder, source.file_name)
    if os.path.exists(path):
        if source.sha256 and sha256_of(path) == source.sha256:
            return path, None
        if not source.sha256 and _recorded_hash_ok(path):
            return path, None
        _discard(path, "Cached upstream weights do not match the hash recorded at download")
    url = source_url(source)
    try:
        downloads.download(url, path)
    except downloads.HTMLPageError as error:
        raise WeightsDownloadError(_html_page_message(source, error)) from None
    except OSError as error:
        raise WeightsDownloadError(
            f"Could not download the {source.name} weights from {url}: {error}. If this machine "
            f"cannot reach that host, put {source.file_name} in a folder (or on a server) it can "
            f"reach and set {MIRROR_VARIABLE} to that folder or base URL."
            + (f" The release also has a mirror: {source.fallback}." if source.fallback else "")
        ) from None
    _check_pinned(source, path, url)
    _record(path, {"url": url, "revision": None})
    return path, None


def _download_from_hub(source):
    try:
        path, revision = downloads.hf_download(source.hf_repo, source.hf_file)
    except OSError as error:
        raise WeightsDownloadError(
            f"{error}. If this machine cannot reach the hub, put {source.file_name} in a folder "
            f"it can reach and set {MIRROR_VARIABLE} to it."
        ) from None
    _check_pinned(source, path, f"hf://{source.hf_repo}")
    return path, revision


def _check_pinned(source, path, origin):
    if source.sha256 and sha256_of(path) != source.sha256:
        if os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
        raise WeightsDownloadError(
            f"{source.file_name} downloaded from {origin} does not have the registered sha256 "
            f"{source.sha256}; the file was removed."
        )


def _html_page_message(source, error):
    ways = [f"download {source.file_name} yourself and pass weights=<that file>"]
    if source.fallback:
        ways.insert(0, f"get it from the release's mirror {source.fallback}")
    ways.append(f"or set {MIRROR_VARIABLE} to a folder or server holding it")
    return (
        f"The {source.name} weights could not be downloaded: {error}. Nothing was cached. "
        f"Ways out: {'; '.join(ways)}."
    )


# --------------------------------------------------------------------------- converting


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
    save_atomically(model.save_weights, output)
    return output, sha256_of(output), report


def imagenet_weights_path(model_name, tag=None):
    """The converted ``.weights.h5`` of ``model_name``'s registered weights ``tag`` (default: its
    ``"imagenet"`` entry), fetched and converted if needed."""
    source = weight_source(model_name, tag)
    converted = os.path.join(cache_dir(), f"{source.name}.weights.h5")
    if os.path.exists(converted):
        if _recorded_hash_ok(converted):
            return converted
        _discard(converted, "Cached converted weights are corrupted")
    upstream, revision = download_upstream(source)
    print(f"Converting {source.file_name} to Keras weights (once): {converted}", flush=True)
    try:
        convert_checkpoint(model_name, upstream, converted)
    except Exception:
        # A damaged upstream file must not stay in the cache to fail the same way next time.
        if not source.hf_repo or os.environ.get(MIRROR_VARIABLE):
            _discard(upstream, "The cached upstream file could not be converted")
        raise
    origin = f"hf://{source.hf_repo}" if revision else source_url(source)
    upstream_hash = sha256_of(upstream)
    _record(converted, {"upstream": origin, "revision": revision, "upstream_sha256": upstream_hash})
    return converted


# --------------------------------------------------------------------------- loading


def is_upstream_checkpoint(path):
    """True for PyTorch / safetensors files (converted on load), False for Keras weights."""
    return not os.fspath(path).endswith((".h5", ".keras"))


def is_preset(weights):
    """Whether ``weights`` names a preset: a hub handle or a folder with a preset's files."""
    if downloads.is_hub_handle(weights):
        return True
    return isinstance(weights, str | os.PathLike) and os.path.isfile(
        os.path.join(os.fspath(weights), "config.json")
    )


def load_model_weights(model, model_name, weights):
    """Loads ``weights`` into ``model``: ``"imagenet"`` or another registered tag of
    ``model_name``, a preset (``hf://``, ``kaggle://``, a folder), a ``.weights.h5``, or an
    upstream checkpoint (converted on the fly)."""
    info = registry.model_info(model_name)
    if weights == "imagenet":
        model.load_weights(imagenet_weights_path(model_name))
        return
    if isinstance(weights, str) and any(weights in (e.tag, e.name) for e in info.weights):
        model.load_weights(imagenet_weights_path(model_name, weights))
        return
    if is_preset(weights):
        load_preset_weights(model, model_name, os.fspath(weights))
        return
    weights = os.fspath(weights)
    if is_upstream_checkpoint(weights):
        from eca_keras.convert import apply_checkpoint

        apply_checkpoint(model, weights, family=info.family)
    else:
        load_keras_weights(model, weights, model_name)


def read_preset_info(folder):
    """A preset's ``eca_keras.json`` (architecture, class names, evaluation transform...)."""
    path = os.path.join(folder, PRESET_INFO)
    if not os.path.isfile(path):
        raise ValueError(
            f"{folder} is not a preset written by eca-keras publish (no {PRESET_INFO})"
        )
    with open(path) as handle:
        return json.load(handle)


def load_preset_weights(model, model_name, reference):
    """Copies a published preset's weights into ``model`` (built by ``model_name``'s
    constructor), layer by layer by name: the backbone's layers are the constructor's, the
    classifier's head is ``predictions``."""
    folder, _ = downloads.fetch_preset(reference)
    info = read_preset_info(folder)
    if info.get("architecture") != model_name:
        raise ValueError(
            f"{reference} holds {info.get('architecture')} weights, not {model_name}: use "
            f"get_model({info.get('architecture')!r}, weights={reference!r})"
        )
    try:
        import keras_hub
    except ImportError:
        raise ImportError("Preset weights need keras-hub: pip install 'eca-keras[hub]'") from None
    has_head = any(layer.name == "predictions" for layer in model.layers)
    if has_head:
        task = keras_hub.models.ImageClassifier.from_preset(folder)
        backbone, head = task.backbone, task.output_dense
    else:
        backbone, head = keras_hub.models.Backbone.from_preset(folder), None
    copy_weights_by_name(backbone, model, reference, skip=("predictions",))
    if has_head:
        _copy(head, model.get_layer("predictions"), reference)


def copy_weights_by_name(source, target, origin, skip=()):
    """Fills every layer of ``target`` that has weights (but those named in ``skip``) with the
    weights of ``source``'s layer of the same name: the constructors' layer names are the
    contract between a model, its keras-hub backbone and its presets. ``origin`` names the
    source in the one-line errors (a missing layer, other shapes)."""
    for layer in target.layers:
        if not layer.weights or layer.name in skip:
            continue
        try:
            found = source.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"{origin} has no layer {layer.name!r}") from None
        _copy(found, layer, origin)


def _copy(source, target, reference):
    values = source.get_weights()
    shapes = [tuple(v.shape) for v in values]
    expected = [tuple(w.shape) for w in target.weights]
    if shapes != expected:
        raise ValueError(
            f"{reference}: layer {target.name!r} has shapes {shapes}, the model needs {expected} "
            "(another number of classes? pass classes= to match)"
        )
    target.set_weights(values)


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
