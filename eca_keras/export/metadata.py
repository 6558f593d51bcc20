"""TFLite metadata for an image classifier, as MediaPipe Tasks and the TFLite Task Library read it.

Written with MediaPipe's metadata writers (``mediapipe.tasks.python.metadata``; the extra
``eca-keras[deploy]``), read back with its ``MetadataDisplayer``. What a ``.tflite`` carries:

- the model: name, description, version, author, license;
- the input ``image``: RGB, and ``NormalizationOptions`` true to the file's input type (the model
  normalises inside, so a uint8 or float32 input takes raw pixels: mean 0, std 1; an int8 input
  is ``pixel - 128``: mean 128, std 1; MediaPipe ignores them for uint8 inputs), the evaluation
  transform in words;
- the output ``probabilities``: the labels, one a line, in output order;
- the sidecar (``eca_keras.json``: evaluation transform, quantization) as a packed file.

Packed files are a zip appended to the flatbuffer (``unzip -l model.tflite`` lists them); LiteRT
ignores it. ``image_classifier.MetadataWriter`` is not used: it fixes the name and description
and has no version, author or license.
"""

import json
import os
import tempfile

from eca_keras.export import mediapipe_compat

LABELS_FILE = "labels.txt"
SIDECAR_FILE = "eca_keras.json"
CARD_FIELDS = ("name", "description", "version", "author", "license")
PACKED_SIDECAR_KEYS = ("model", "quantize", "classes", "input", "output", "eval",
                       "eca_keras_version")  # fmt: skip
# The NormalizationOptions true to an input type: input = (pixel - mean) / std.
NORMALIZATION = {"uint8": ([0.0], [1.0]), "float32": ([0.0], [1.0]), "int8": ([128.0], [1.0])}


def transform_text(eval_config, input_dtype):
    """The evaluation transform in words, for the input tensor's description."""
    size, crop = eval_config["input_size"], eval_config["crop_pct"]
    resize = int(size // crop) if crop < 1 else size
    return (
        f"RGB {input_dtype} pixels, {size}x{size}, not normalised (the model normalises inside). "
        f"Evaluation transform: resize the short side to {resize} ({eval_config['interpolation']},"
        f" antialiased), center crop {size}x{size}. MediaPipe stretches the image (or its "
        f"region of interest) to {size}x{size}: pass the centred square of side "
        f"{crop:g} x the short side as region of interest to match it."
    )


def write_tflite_metadata(flatbuffer, labels, sidecar, card, normalization=None):
    """``flatbuffer`` with metadata and packed files (see the module docstring).

    ``card``: the model's ``name``, ``description``, ``version``, ``author`` and ``license``;
    ``sidecar``: a JSON-able dict with ``eval`` (input_size, crop_pct, interpolation);
    ``normalization``: ``(mean, std)`` lists, default :data:`NORMALIZATION` of the input type.
    """
    mediapipe_compat.install()
    import flatbuffers
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb
    from mediapipe.tasks.metadata import schema_py_generated as model_fb
    from mediapipe.tasks.python.metadata import metadata
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, writer_utils

    unknown = set(card) - set(CARD_FIELDS)
    if unknown:
        raise ValueError(f"Unknown metadata fields {sorted(unknown)}; known: {CARD_FIELDS}")
    input_types = writer_utils.get_input_tensor_types(bytearray(flatbuffer))
    output_types = writer_utils.get_output_tensor_types(bytearray(flatbuffer))
    if len(input_types) != 1 or len(output_types) != 1:
        raise ValueError("TFLite metadata is written for one input image and one output")
    dtype = {model_fb.TensorType.UINT8: "uint8", model_fb.TensorType.INT8: "int8"}.get(
        input_types[0], "float32"
    )
    mean, std = normalization or NORMALIZATION[dtype]
    with tempfile.TemporaryDirectory(prefix="eca-keras-metadata-") as work:
        labels_path = os.path.join(work, LABELS_FILE)
        with open(labels_path, "w") as handle:
            handle.write("\n".join(str(label) for label in labels))  # no empty last label
        sidecar_path = os.path.join(work, SIDECAR_FILE)
        with open(sidecar_path, "w") as handle:
            json.dump(sidecar, handle, indent=2, sort_keys=True)

        model = metadata_info.GeneralMd(
            name=card.get("name"),
            version=card.get("version"),
            description=card.get("description"),
            author=card.get("author"),
            licenses=card.get("license"),
        ).create_metadata()
        model.associatedFiles = [
            metadata_info.AssociatedFileMd(
                sidecar_path,
                description="eca_keras sidecar: evaluation transform, input, quantization",
                file_type=fb.AssociatedFileType.DESCRIPTIONS,
            ).create_metadata()
        ]
        image = metadata_info.InputImageTensorMd(
            name="image",
            description=transform_text(sidecar["eval"], dtype),
            norm_mean=list(mean),
            norm_std=list(std),
            color_space_type=fb.ColorSpaceType.RGB,
            tensor_type=input_types[0],
        ).create_metadata()
        probabilities = metadata_info.ClassificationTensorMd(
            name="probabilities",
            description="Class probabilities (the softmax is inside the model).",
            label_files=[metadata_info.LabelFileMd(labels_path)],
            tensor_type=output_types[0],
        ).create_metadata()
        subgraph = fb.SubGraphMetadataT()
        subgraph.inputTensorMetadata = [image]
        subgraph.outputTensorMetadata = [probabilities]
        model.subgraphMetadata = [subgraph]
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), metadata.MetadataPopulator.METADATA_FILE_IDENTIFIER)

        # A file of our own: the populator made from a buffer deletes its temporary file only
        # when garbage-collected (at exit, with a traceback).
        model_path = os.path.join(work, "model.tflite")
        with open(model_path, "wb") as handle:
            handle.write(flatbuffer)
        populator = metadata.MetadataPopulator.with_model_file(model_path)
        populator.load_metadata_buffer(builder.Output())
        populator.load_associated_files([labels_path, sidecar_path])
        populator.populate()
        with open(model_path, "rb") as handle:
            return handle.read()


def read_tflite_metadata(flatbuffer):
    """What a client reads from a ``.tflite``, through MediaPipe's ``MetadataDisplayer``:
    ``{name, description, version, author, license, min_parser_version, input_name,
    color_space, normalization: {mean, std} or None, packed_files, labels, sidecar}``; ``None``
    where the file has no metadata."""
    mediapipe_compat.install()
    from mediapipe.tasks.python.metadata import metadata

    try:
        displayer = metadata.MetadataDisplayer.with_model_buffer(bytearray(flatbuffer))
    except ValueError:  # "The model does not have metadata."
        return None
    card = json.loads(displayer.get_metadata_json())
    subgraph = card["subgraph_metadata"][0]
    image = subgraph["input_tensor_metadata"][0]
    normalization = next(
        (
            unit["options"]
            for unit in image.get("process_units", [])
            if unit.get("options_type") == "NormalizationOptions"
        ),
        None,
    )
    packed = displayer.get_packed_associated_file_list()
    labels = sidecar = None
    if LABELS_FILE in packed:
        labels = displayer.get_associated_file_buffer(LABELS_FILE).decode().split("\n")
    if SIDECAR_FILE in packed:
        sidecar = json.loads(displayer.get_associated_file_buffer(SIDECAR_FILE))
    return {
        **{field: card.get(field) for field in CARD_FIELDS},
        "min_parser_version": card.get("min_parser_version"),
        "input_name": image.get("name"),
        "color_space": image.get("content", {}).get("content_properties", {}).get("color_space"),
        "normalization": normalization,
        "packed_files": sorted(packed),
        "labels": labels,
        "sidecar": sidecar,
    }
