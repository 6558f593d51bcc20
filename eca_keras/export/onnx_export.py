"""ONNX files: the serving function (uint8 pixels in, probabilities out) converted by tf2onnx.

``tf2onnx.convert.from_function`` on :func:`~eca_keras.export.saved_model.serving_function`
traced with ``images`` ``(None, S, S, 3)`` uint8: the batch dimension stays dynamic (named
``batch``), the normalisation and the softmax are inside, and the file's single input and output
are ``images`` and ``probabilities``. Keras' own ``model.export(format="onnx")`` runs the same
converter on a model, not a function (a uint8 front end would need a wrapper model; with Keras'
``Normalization`` layer its constants become extra required graph inputs), and gives the same
graph.

ECA is traced in :func:`eca_keras.layers.eca.export_lowering`'s form: tf2onnx keeps the network
channels-last only when the gate reaches the multiply without reshapes; with ECA's usual form the
file has two full-size transposes around every ECA multiply.
"""

import collections
import json

OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
BATCH_DIMENSION = "batch"


def write_onnx(network, path, input_size, outputs_probabilities, mean, std, opset=OPSET):
    """Converts ``network`` (a float32 Keras model) into the camera-facing ONNX file at ``path``."""
    import tensorflow as tf
    import tf2onnx

    from eca_keras.export.saved_model import serving_function
    from eca_keras.layers.eca import export_lowering

    serve = serving_function(network, outputs_probabilities, mean, std)
    signature = [tf.TensorSpec((None, input_size, input_size, 3), tf.uint8, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def probabilities(images):
        return {OUTPUT_NAME: serve(images)["probabilities"]}

    with export_lowering():
        model, _ = tf2onnx.convert.from_function(probabilities, signature, opset=opset)
    _name_the_batch_dimension(model)
    _drop_unused_opsets(model)
    _save(model, path)


def add_metadata(path, labels, sidecar):
    """Stores the labels (one a line) and the sidecar (JSON) in the file's ``metadata_props``
    (onnxruntime: ``session.get_modelmeta().custom_metadata_map``)."""
    import onnx

    model = onnx.load(path)
    del model.metadata_props[:]
    for key, value in (("labels", "\n".join(map(str, labels))), ("eca_keras", json.dumps(sidecar))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    _save(model, path)


def describe(path):
    """``{"opset", "operators": {op: count}, "inputs", "outputs"}`` of an ONNX file."""
    import onnx

    model = onnx.load(path, load_external_data=False)

    def values(entries):
        return [
            {
                "name": entry.name,
                "dtype": onnx.TensorProto.DataType.Name(entry.type.tensor_type.elem_type).lower(),
                "shape": [d.dim_param or d.dim_value for d in entry.type.tensor_type.shape.dim],
            }
            for entry in entries
        ]

    return {
        "opset": {(entry.domain or "ai.onnx"): entry.version for entry in model.opset_import},
        "operators": dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items())),
        "inputs": values(model.graph.input),
        "outputs": values(model.graph.output),
        "producer": f"{model.producer_name} {model.producer_version}",
    }


def _name_the_batch_dimension(model):
    for value in list(model.graph.input) + list(model.graph.output):
        dimension = value.type.tensor_type.shape.dim[0]
        if dimension.dim_param or not dimension.dim_value:
            dimension.dim_param = BATCH_DIMENSION


def _drop_unused_opsets(model):
    """tf2onnx declares ``ai.onnx.ml`` whether or not a node uses it."""
    used = {node.domain or "" for node in model.graph.node} | {""}
    kept = [entry for entry in model.opset_import if (entry.domain or "") in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def _save(model, path):
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
