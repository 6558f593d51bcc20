"""``eca-keras publish``: a keras-hub preset folder of any weights, with a model card and a sha256
manifest, checked, and optionally uploaded to the Hugging Face hub or Kaggle.

The folder holds keras-hub's files (``config.json``, ``model.weights.h5``, ``task.json``,
``task.weights.h5``, ``preprocessor.json``, ``image_converter.json``, ``metadata.json``), then
``eca_keras.json`` (architecture, class names, evaluation transform, source, published accuracy,
the parity measured here), the model card ``README.md``, and ``SHA256SUMS`` over every file. It is
written in a temporary folder, reloaded by keras-hub and compared with the source model, and only
then renamed into place.
"""

import dataclasses
import os
import tempfile

import numpy as np

from eca_keras import downloads, models, runs
from eca_keras.applications import registry
from eca_keras.applications import weights as registered_weights
from eca_keras.files import sha256_of, write_atomically
from eca_keras.hub import presets
from eca_keras.preprocessing import EvalConfig, eval_transform, normalize

MAX_PARITY = 1e-4  # largest |logit difference| / largest |logit| between preset and source
PARITY_IMAGES = 4


@dataclasses.dataclass
class PublishResult:
    path: str
    architecture: str
    parity: float
    files: dict  # relative path -> sha256
    uploaded: str | None = None  # the handle, with the revision where the hub returns one


def publish(model, weights, output, upload=None, overwrite=False, log=print):
    """Writes the preset of ``model`` with ``weights`` to ``output`` and uploads it if asked.

    ``weights``: ``"imagenet"`` or a registered tag, an upstream checkpoint, a ``.weights.h5``,
    or a run directory of ``eca-keras train`` (``model`` may then be None: the run's).
    ``upload``: ``hf://org/name`` or ``kaggle://owner/model/keras/variation``.
    """
    if upload is not None and not downloads.is_hub_handle(upload):
        raise ValueError(f"--upload takes hf://org/name or kaggle://...; received {upload!r}")
    if upload and upload.startswith("hf://"):
        downloads.parse_hf_handle(upload)
    path = write_preset(model, weights, output, overwrite=overwrite, log=log)
    info = registered_weights.read_preset_info(path)
    result = PublishResult(
        path, info["architecture"], info["parity"], downloads.read_manifest(path)
    )
    if upload:
        result.uploaded = upload_preset(path, upload, info, log)
    return result


def write_preset(model, weights, output, overwrite=False, log=print):
    """The checked preset folder at ``output`` (see the module docstring); returns its path."""
    _check_output(output, overwrite)
    source = _source(model, weights)
    log(f"building the {source['architecture']} preset from {source['description']}")
    classifier = classifier_from_keras(
        source["model"], source["architecture"], source["eval"], source["num_classes"]
    )
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".preset-") as work:
        staged = os.path.join(work, "preset")
        classifier.save_to_preset(staged)
        parity = measure_parity(staged, source["model"], source["eval"])
        log(f"parity: reloaded preset vs source, max |logit difference| {parity:.2e} (relative)")
        if not parity <= MAX_PARITY:
            raise RuntimeError(
                f"The preset does not compute what the source model computes (max relative logit "
                f"difference {parity:.2e} > {MAX_PARITY:.0e}); nothing was written"
            )
        info = _preset_info(source, parity)
        presets.write_info(staged, info)
        write_atomically(os.path.join(staged, "README.md"), model_card(info, classifier))
        downloads.write_manifest(staged)
        if os.path.isdir(output):
            os.replace(output, os.path.join(work, "replaced"))
        os.replace(staged, output)
    log(f"wrote {output}")
    return output


def _check_output(output, overwrite):
    output = os.fspath(output)
    if not os.path.lexists(output):
        return
    if not os.path.isdir(output):
        raise ValueError(f"{output} exists and is not a folder")
    if not os.listdir(output):
        os.rmdir(output)
        return
    if not overwrite:
        raise ValueError(f"{output} exists and is not empty; pass --overwrite to replace it")
    if not _written_by_publish(output):
        raise ValueError(
            f"{output} is not a preset written by eca-keras publish (or holds other files too); "
            "refusing to replace it"
        )


def _written_by_publish(folder):
    """Whether ``folder`` holds exactly what publish writes: the files its ``SHA256SUMS`` lists
    (``eca_keras.json`` among them) and that manifest, nothing else. (An export's SavedModel also
    has an ``eca_keras.json``; a preset with a user's file added is not publish's alone.)"""
    if not os.path.isfile(os.path.join(folder, downloads.MANIFEST)):
        return False
    listed = downloads.read_manifest(folder)
    present = {
        os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
        for root, _, files in os.walk(folder)
        for name in files
    }
    return registered_weights.PRESET_INFO in listed and present == {*listed, downloads.MANIFEST}


def _source(model, weights):
    """The Keras model to publish (logits out) and what the card says about it."""
    if isinstance(weights, str | os.PathLike) and runs.is_run_dir(os.fspath(weights)):
        return _run_source(model, os.fspath(weights))
    if model is None:
        raise ValueError("Give --model (a registered model name) for these weights")
    info = registry.model_info(model)
    network = registry.get_model(model, weights=weights, classifier_activation=None)
    entry = next((e for e in info.weights if weights in ("imagenet", e.tag, e.name)), None)
    if weights == "imagenet":
        entry = info.default_weights
    if entry is not None:
        converted = registered_weights.imagenet_weights_path(model, entry.tag)
        record = registered_weights.provenance(converted)
        checkpoint = {
            "file": entry.file_name,
            "url": entry.url if not entry.hf_repo else f"hf://{entry.hf_repo}",
            "revision": record.get("revision"),
            "sha256": record.get("upstream_sha256"),
        }
        description = f"the {entry.name} checkpoint ({entry.license or 'see upstream'})"
        return {
            "architecture": model,
            "model": network,
            "eval": entry.eval,
            "num_classes": 1000,
            "class_names": models.imagenet_class_names(),
            "checkpoint": checkpoint,
            "license": entry.license,
            "published": [dataclasses.asdict(result) for result in entry.results],
            "description": description,
        }
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such weights file or run directory: {path}")
    default = info.default_weights
    return {
        "architecture": model,
        "model": network,
        "eval": default.eval if default else EvalConfig(info.default_size),
        "num_classes": network.output_shape[-1],
        "class_names": models.imagenet_class_names(),
        "checkpoint": {"file": os.path.basename(path), "sha256": sha256_of(path)},
        "license": default.license if default else "",
        "published": [],
        "description": f"the weights file {os.path.basename(path)}",
    }


def _run_source(model, run_dir):
    opened = models.open_model(run_dir)
    architecture = opened.run_config.get("model")
    if not registry.is_registered(architecture):
        raise ValueError(f"{run_dir} trained {architecture!r}, which is not a registered model")
    if model is not None and model != architecture:
        raise ValueError(f"{run_dir} is a run of {architecture}, not {model}")
    keras_model = opened.keras_model
    if opened.outputs == "probabilities":
        raise ValueError(f"{run_dir}: expected a head that returns logits")
    best = runs.best_so_far(run_dir)
    file = runs.model_file(run_dir)
    return {
        "architecture": architecture,
        "model": keras_model,
        "eval": opened.eval_config,
        "num_classes": opened.num_classes,
        "class_names": opened.class_names,
        "checkpoint": {"file": os.path.basename(file), "sha256": sha256_of(file)},
        "license": "",
        "published": [],
        "run": {
            "dataset": opened.run_config.get("dataset"),
            "best_val_accuracy": best,
            "epochs": opened.run_config.get("epochs"),
        },
        "description": f"the training run {os.path.basename(os.path.abspath(run_dir))}",
    }


def classifier_from_keras(network, architecture, config, num_classes):
    """An ``ECAImageClassifier`` with ``network``'s weights and ``config``'s image converter."""
    from eca_keras.hub.classifier import ECAImageClassifier

    return ECAImageClassifier.from_keras_model(network, architecture, config, num_classes)


def measure_parity(folder, network, config, seed=0):
    """Reloads the preset with keras-hub and compares its logits on raw pixels with the source
    model fed the same images through the evaluation transform; returns the largest absolute
    difference over the largest absolute logit."""
    import keras_hub
    import tensorflow as tf

    classifier = keras_hub.models.ImageClassifier.from_preset(folder)
    rng = np.random.default_rng(seed)
    size = config.input_size
    shape = (PARITY_IMAGES, size + size // 3, size, 3)  # not square: the crop matters
    pixels = rng.integers(0, 256, shape).astype("uint8")
    got = np.asarray(classifier.predict(pixels, verbose=0), "float64")
    prepared = np.stack(
        [normalize(eval_transform(tf.constant(image), config).numpy(), config.mean, config.std)
         for image in pixels]
    )  # fmt: skip
    expected = np.asarray(network.predict(prepared, verbose=0), "float64")
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))


def _preset_info(source, parity):
    from eca_keras import __version__

    return {
        "architecture": source["architecture"],
        "num_classes": source["num_classes"],
        "class_names": source["class_names"],
        "eval": source["eval"].to_dict(),
        "checkpoint": source["checkpoint"],
        "license": source["license"],
        "published": source["published"],
        "run": source.get("run"),
        "parity": parity,
        "eca_keras_version": __version__,
    }


def model_card(info, classifier):
    """The preset's ``README.md``."""
    config = info["eval"]
    lines = [
        "---",
        "library_name: keras-hub",
        "pipeline_tag: image-classification",
        f"license: {'apache-2.0' if 'Apache' in (info['license'] or '') else 'other'}",
        "tags: [keras, keras-hub, eca-net, image-classification]",
        "---",
        f"# {info['architecture']} (ECA-Net) for Keras",
        "",
        f"Efficient Channel Attention network `{info['architecture']}` as a keras-hub preset, "
        "written by [eca_keras](https://pypi.org/project/eca-keras/) `eca-keras publish`.",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{info['architecture']}` |",
        f"| parameters | {classifier.count_params():,} |",
        f"| classes | {info['num_classes']} |",
        f"| source checkpoint | {_checkpoint_line(info['checkpoint'])} |",
        f"| evaluation transform | short side to {config['input_size']}/{config['crop_pct']}, "
        f"center crop {config['input_size']}, {config['interpolation']}, "
        f"mean {config['mean']}, std {config['std']} |",
        f"| parity (this preset reloaded vs the source model) | {info['parity']:.1e} "
        "max relative logit difference |",
        f"| license of the weights | {info['license'] or 'as the source weights'} |",
    ]
    for result in info["published"]:
        top5 = "-" if result["top5"] is None else f"{result['top5']:.2f}"
        lines.append(
            f"| ImageNet top-1 / top-5 (published) at {result['size']} px, crop "
            f"{result['crop_pct']} | {result['top1']:.2f} / {top5} |"
        )
    if info.get("run"):
        run = info["run"]
        best = run.get("best_val_accuracy")
        lines.append(
            f"| trained with eca-keras train | on {run.get('dataset')}, {run.get('epochs')} "
            f"epochs, best validation accuracy {best if best is None else f'{100 * best:.2f}%'} |"
        )
    lines += [
        "",
        "```python",
        "import eca_keras  # registers the ECA classes with keras-hub",
        "import keras_hub",
        'classifier = keras_hub.models.ImageClassifier.from_preset("<this preset>")',
        "logits = classifier.predict(images)  # uint8 RGB of any size; preprocessing inside",
        "```",
        "",
        "`SHA256SUMS` lists the sha256 of every file; eca_keras checks it on every load.",
        "",
    ]
    return "\n".join(lines)


def _checkpoint_line(checkpoint):
    parts = [f"`{checkpoint.get('file')}`"]
    if checkpoint.get("url"):
        parts.append(str(checkpoint["url"]))
    if checkpoint.get("revision"):
        parts.append(f"revision {checkpoint['revision']}")
    if checkpoint.get("sha256"):
        parts.append(f"sha256 `{checkpoint['sha256']}`")
    return ", ".join(parts)


def upload_preset(folder, handle, info, log=print):
    """Uploads a preset folder (our own README kept: keras-hub's upload_preset would replace
    it); returns the handle with the revision the hub reports."""
    if handle.startswith("hf://"):
        import huggingface_hub

        repo_id, _ = downloads.parse_hf_handle(handle)
        huggingface_hub.create_repo(repo_id, exist_ok=True)
        commit = huggingface_hub.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=f"{info['architecture']} preset (eca-keras publish)",
        )
        revision = getattr(commit, "oid", None)
        log(f"uploaded to {handle} (revision {revision})")
        return f"{handle}@{revision}" if revision else handle
    try:
        import kagglehub
    except ImportError:
        raise ImportError(
            "kaggle:// uploads need kagglehub: pip install 'eca-keras[hub]'"
        ) from None
    kagglehub.model_upload(
        handle.removeprefix("kaggle://"),
        folder,
        license_name="Apache 2.0" if "Apache" in (info["license"] or "") else None,
        version_notes=f"{info['architecture']} (eca-keras publish)",
    )
    log(f"uploaded to {handle}")
    return handle
