"""Makes MediaPipe's metadata tools importable where its wheel lacks their compiled helper.

``mediapipe.tasks.python.metadata.metadata`` (and so every metadata writer, the populator and the
displayer) imports ``mediapipe.tasks.cc.metadata.python._pywrap_metadata_version``, a pybind11
extension that mediapipe 1.2.x no longer ships (its Python tasks moved to a C library): the
import fails with ``No module named 'mediapipe.tasks.cc'``. The extension has one function: the
lowest metadata-parser version that reads a metadata buffer, i.e. the newest schema member the
buffer uses. :func:`minimum_parser_version` computes it as MediaPipe's C++ does
(``mediapipe/tasks/cc/metadata/metadata_version.cc``); :func:`install` registers it under the
missing name, and only when the real extension cannot be imported.
"""

import importlib
import sys
import types

EXTENSION = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
BASE_VERSION = (1, 0, 0)


def _member_versions(fb):
    """Schema members added after 1.0.0 -> the parser version that introduced them."""
    options, files = fb.ProcessUnitOptions, fb.AssociatedFileType
    return {
        "file_type": {files.VOCABULARY: (1, 0, 1), files.SCANN_INDEX_FILE: (1, 4, 0)},
        "file_version": (1, 4, 1),
        "process_units": (1, 1, 0),  # SubGraphMetadata.input/output_process_units
        "unit_options": {
            options.BertTokenizerOptions: (1, 1, 0),
            options.SentencePieceTokenizerOptions: (1, 1, 0),
            options.RegexTokenizerOptions: (1, 2, 1),
        },
        "tensor_groups": (1, 2, 0),
        "audio_properties": (1, 3, 0),
        "custom_metadata": (1, 5, 0),
    }


def minimum_parser_version(metadata_buffer):
    """``"major.minor.patch"``: the metadata-parser version a ``ModelMetadata`` buffer needs."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    versions = _member_versions(fb)
    root = fb.ModelMetadataT.InitFromObj(
        fb.ModelMetadata.GetRootAsModelMetadata(bytearray(metadata_buffer), 0)
    )
    needed = [BASE_VERSION]

    def files(entries):
        for entry in entries or ():
            needed.append(versions["file_type"].get(entry.type, BASE_VERSION))
            if entry.version is not None:
                needed.append(versions["file_version"])

    def units(entries):
        for unit in entries or ():
            needed.append(versions["unit_options"].get(unit.optionsType, BASE_VERSION))

    def tensors(entries):
        for tensor in entries or ():
            files(tensor.associatedFiles)
            units(tensor.processUnits)
            content = tensor.content
            if content and content.contentPropertiesType == fb.ContentProperties.AudioProperties:
                needed.append(versions["audio_properties"])

    for subgraph in root.subgraphMetadata or ():
        tensors(subgraph.inputTensorMetadata)
        tensors(subgraph.outputTensorMetadata)
        files(subgraph.associatedFiles)
        for process_units in (subgraph.inputProcessUnits, subgraph.outputProcessUnits):
            if process_units is not None:
                needed.append(versions["process_units"])
                units(process_units)
        if subgraph.inputTensorGroups is not None or subgraph.outputTensorGroups is not None:
            needed.append(versions["tensor_groups"])
        if subgraph.customMetadata is not None:
            needed.append(versions["custom_metadata"])
    files(root.associatedFiles)
    return ".".join(str(part) for part in max(needed))


def extension_is_missing():
    """Whether MediaPipe's own extension cannot be imported (checked once per process: after
    :func:`install` the name resolves to the stand-in)."""
    module = sys.modules.get(EXTENSION)
    if module is not None:
        return getattr(module, "__eca_keras_stand_in__", False)
    try:
        importlib.import_module(EXTENSION)
    except ImportError:
        return True
    return False


def install():
    """Registers the stand-in where MediaPipe's extension is missing; returns whether it did."""
    if not extension_is_missing():
        return False
    if EXTENSION in sys.modules:
        return True  # installed already
    module = types.ModuleType(EXTENSION)
    module.GetMinimumMetadataParserVersion = minimum_parser_version
    module.__eca_keras_stand_in__ = True
    parts = EXTENSION.split(".")
    for end in range(2, len(parts)):  # the missing parent packages, outermost first
        name = ".".join(parts[:end])
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            package = types.ModuleType(name)
            package.__path__ = []
            sys.modules[name] = package
            setattr(sys.modules[".".join(parts[: end - 1])], parts[end - 1], package)
    sys.modules[EXTENSION] = module
    setattr(sys.modules[".".join(parts[:-1])], parts[-1], module)
    return True
