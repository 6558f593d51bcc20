"""Which ops of a ``.tflite`` the TFLite (LiteRT) GPU delegate would run, read off the file.

TensorFlow's ``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)`` (and LiteRT's
copy of it) reports "compatible" for every model, WHILE and GATHER_ND included: its list of
incompatible nodes is never filled any more. So this module states the delegate's own rules, as
LiteRT writes them (``tflite/delegates/gpu/common/model_builder.cc``: the op's parser, its
highest supported version, the types of its runtime tensors; ``tflite/tools/versioning/
gpu_compatibility.cc``: the op's own checks), for the ops these models use and a few common
others, with the delegate's default options (quantized ops allowed). An op this table does not
know is reported as not checked, not as compatible.
"""

import dataclasses

# TFLite TensorType codes -> names (schema.fbs).
TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
         9: "int8"}  # fmt: skip
RUNTIME_TYPES = ("float32", "float16", "int8", "uint8")  # quantized ops allowed (the default)
CAST_TYPES = {
    "inputs": RUNTIME_TYPES + ("bool", "int32"),
    "outputs": RUNTIME_TYPES + ("bool", "int32"),
    "pairs": {("bool", "float16"), ("bool", "float32"), ("float16", "bool"), ("float32", "bool")}
    | {(a, b) for a in ("float32", "int32") for b in ("float32", "int32")},
}
SIGN_BIT_ACTIVATION = 5  # the one fused activation the delegate refuses
RULES_SOURCE = (
    "LiteRT GPU delegate rules (model_builder.cc, gpu_compatibility.cc): op parser and highest "
    "version, op checks, runtime tensor types; quantized ops allowed"
)


@dataclasses.dataclass
class Op:
    index: int
    name: str
    version: int
    inputs: list  # [(type name, shape list, is constant)]
    outputs: list
    options: object  # the op's builtin options (object API) or None


def _one_runtime_input(op):
    runtime = sum(not const for _, _, const in op.inputs)
    return None if runtime == 1 else f"{runtime} runtime inputs, expects 1"


def _activation(op):
    activation = getattr(op.options, "fusedActivationFunction", 0)
    return "fused SIGN_BIT activation" if activation == SIGN_BIT_ACTIVATION else None


def _broadcast(op):
    """ADD/MUL of tensors of different ranks: the delegate's standard broadcasts only."""
    if len(op.inputs) != 2:
        return f"{op.name} needs two inputs"
    (_, a, _), (_, b, _) = op.inputs
    if len(a) <= 1 or len(b) <= 1 or len(a) == len(b):
        return None
    long, short = (a, b) if len(a) >= len(b) else (b, a)
    allowed = (
        (len(long) == 4 and len(short) == 3 and long[0] == 1)
        or (len(long) == 4 and short == [1, 1] and long[0] == 1)
        or (len(long) == 4 and len(short) == 2 and long[0] == short[0] and long[3] == short[1])
    )
    return None if allowed else f"broadcast of {a} and {b}"


def _add(op):
    return _broadcast(op)


def _mul(op):
    return _broadcast(op) or _activation(op)


def _sub(op):
    constants = sum(const for _, _, const in op.inputs)
    runtime = len(op.inputs) - constants
    if (runtime, constants) not in ((2, 0), (1, 1)):
        return "needs 1 or 2 runtime operands"
    return _activation(op)


def _cast(op):
    pair = (op.inputs[0][0], op.outputs[0][0])
    return None if pair in CAST_TYPES["pairs"] else f"CAST {pair[0]} -> {pair[1]}"


def _convolution(op):
    options = op.options
    runtime = sum(not const for _, _, const in op.inputs)
    if runtime > 2 or len(op.outputs) != 1:
        return "expects 1 or 2 runtime inputs and 1 output"
    if min(options.strideH, options.strideW, options.dilationHFactor, options.dilationWFactor) < 1:
        return "non-positive stride or dilation"
    return _activation(op)


def _depthwise(op):
    problem = _convolution(op)
    if problem:
        return problem
    (_, source, _), (_, kernel, _) = op.inputs[:2]
    output = op.outputs[0][1]
    if len(source) != 4 or len(kernel) != 4 or len(output) != 4:
        return "depthwise convolution of tensors that are not 4-D"
    if output[3] != source[3] * op.options.depthMultiplier or kernel[3] != output[3]:
        return "depthwise channels do not match the depth multiplier"
    return None


def _pooling(op):
    options = op.options
    if _one_runtime_input(op):
        return _one_runtime_input(op)
    if min(options.filterHeight, options.filterWidth, options.strideH, options.strideW) < 1:
        return "non-positive kernel or stride"
    return _activation(op)


def _mean(op):
    constants = [spec for spec in op.inputs if spec[2]]
    if len(op.inputs) - len(constants) != 1 or len(constants) != 1:
        return "expects one runtime input and constant axes"
    return None if constants[0][0] == "int32" else "axes are not int32"


def _fully_connected(op):
    if op.options.weightsFormat != 0:
        return "shuffled weights format"
    if sum(not const for _, _, const in op.inputs) > 2:
        return "more than 2 runtime inputs"
    if op.options.keepNumDims and len(op.inputs[0][1]) != len(op.outputs[0][1]):
        return "keep_num_dims with another output rank"
    return None


def _pad(op):
    if _one_runtime_input(op):
        return _one_runtime_input(op)
    paddings = op.inputs[1][1]
    return None if paddings in ([4, 2], [3, 2]) else f"paddings of shape {paddings}"


def _softmax(op):
    return None if op.options.beta == 1 else "beta != 1"


def _strided_slice(op):
    options = op.options
    if options.ellipsisMask or options.newAxisMask or options.shrinkAxisMask:
        return "ellipsis, new-axis or shrink-axis mask"
    if len(op.inputs) < 4 or len(op.inputs[0][1]) not in (3, 4):
        return "needs 4 inputs and a 3-D or 4-D tensor"
    return None


def _dequantize(op):
    return "int16 input" if op.inputs[0][0] == "int16" else None


def _nothing(op):
    return None


# op -> (highest version the delegate parses, None: not checked; its checks)
RULES = {
    "ADD": (2, _add),
    "AVERAGE_POOL_2D": (2, _pooling),
    "CAST": (None, _cast),
    "CONCATENATION": (2, _nothing),
    "CONV_2D": (6, _convolution),
    "DEPTHWISE_CONV_2D": (6, _depthwise),
    "DEQUANTIZE": (3, _dequantize),
    "DEQUANTIZE (float16 weights)": (None, _nothing),  # taken as constant weights
    "FULLY_CONNECTED": (9, _fully_connected),
    "HARD_SWISH": (None, _one_runtime_input),
    "LOGISTIC": (2, _one_runtime_input),
    "MAX_POOL_2D": (2, _pooling),
    "MEAN": (None, _mean),
    "MUL": (3, _mul),
    "PAD": (2, _pad),
    "QUANTIZE": (2, _one_runtime_input),
    "RELU": (2, _nothing),
    "RELU6": (2, _nothing),
    "RESHAPE": (1, _one_runtime_input),
    "SOFTMAX": (2, _softmax),
    "STRIDED_SLICE": (4, _strided_slice),
    "SUB": (2, _sub),
}


def read_ops(flatbuffer):
    """The ops of the first subgraph with their versions, tensors and options. As the delegate
    does, a DEQUANTIZE of a constant float16 tensor (float16 weights) counts as that constant."""
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if name.isupper()}
    model = schema.Model.GetRootAs(flatbuffer, 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    subgraph = model.Subgraphs(0)
    operators = [subgraph.Operators(i) for i in range(subgraph.OperatorsLength())]

    def tensor_spec(index):
        tensor = subgraph.Tensors(index)
        buffer = model.Buffers(tensor.Buffer())
        constant = buffer.DataLength() > 0 or buffer.Offset() > 1
        shape = tensor.ShapeAsNumpy().tolist() if tensor.ShapeLength() else []
        return TYPES.get(tensor.Type(), f"type{tensor.Type()}"), shape, bool(constant)

    def op_name(operator):
        code = codes[operator.OpcodeIndex()]
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
        return f"CUSTOM:{(code.CustomCode() or b'?').decode()}" if name == "CUSTOM" else name

    float16_weights = {}  # DEQUANTIZE output -> its constant float16 input
    for operator in operators:
        if op_name(operator) == "DEQUANTIZE":
            source = tensor_spec(int(operator.Inputs(0)))
            if source[0] == "float16" and source[2]:
                float16_weights[int(operator.Outputs(0))] = source

    def spec(index):
        return float16_weights.get(index) or tensor_spec(index)

    ops = []
    for index, operator in enumerate(operators):
        inputs = [i for i in operator.InputsAsNumpy().tolist() if i >= 0]
        outputs = [i for i in operator.OutputsAsNumpy().tolist() if i >= 0]
        name = op_name(operator)
        if name == "DEQUANTIZE" and outputs[0] in float16_weights:
            name = "DEQUANTIZE (float16 weights)"
        code = codes[operator.OpcodeIndex()]
        ops.append(
            Op(
                index,
                name,
                code.Version(),
                [spec(i) for i in inputs],
                [spec(i) for i in outputs],
                _options(schema, operator),
            )
        )
    return ops


def _options(schema, operator):
    table = operator.BuiltinOptions()
    if table is None:
        return None
    kinds = {code: name for name, code in vars(schema.BuiltinOptions).items() if name[0].isupper()}
    kind = kinds.get(operator.BuiltinOptionsType())
    reader = getattr(schema, kind, None) if kind else None
    if reader is None:
        return None
    options = reader()
    options.Init(table.Bytes, table.Pos)
    return getattr(schema, f"{kind}T").InitFromObj(options)


def op_problem(op):
    """Why the GPU delegate would not run ``op``, ``None`` if it would, ``"not checked"``
    for an op outside :data:`RULES`."""
    if op.name not in RULES:
        return "not checked"
    highest, checks = RULES[op.name]
    if highest is not None and op.version > highest:
        return f"version {op.version} (the delegate parses up to {highest})"
    problem = checks(op)
    if problem:
        return problem
    extra = CAST_TYPES if op.name == "CAST" else {"inputs": (), "outputs": ()}
    for side, specs in (("inputs", op.inputs), ("outputs", op.outputs)):
        for dtype, shape, constant in specs:
            if len(shape) > 4:
                return f"a {len(shape)}-D tensor"
            if not constant and dtype not in RUNTIME_TYPES + tuple(extra[side]):
                return f"a {dtype} runtime tensor"
    return None


def gpu_report(flatbuffer):
    """``{"fully_compatible", "incompatible": [{index, op, reason}], "not_checked": {op: n},
    "ops", "rules"}``; ``fully_compatible`` is None where some op was not checked."""
    ops = read_ops(flatbuffer)
    incompatible, not_checked = [], {}
    for op in ops:
        problem = op_problem(op)
        if problem == "not checked":
            not_checked[op.name] = not_checked.get(op.name, 0) + 1
        elif problem:
            incompatible.append({"index": op.index, "op": op.name, "reason": problem})
    return {
        "fully_compatible": None if not_checked and not incompatible else not incompatible,
        "incompatible": incompatible,
        "not_checked": not_checked,
        "ops": len(ops),
        "rules": RULES_SOURCE,
    }


def summary(report):
    """One line for the export's printed report."""
    if report["incompatible"]:
        listed = ", ".join(f"{entry['op']} ({entry['reason']})" for entry in report["incompatible"])
        return (
            f"GPU delegate: {len(report['incompatible'])} of {report['ops']} ops would run on "
            f"the CPU: {listed}"
        )
    if report["not_checked"]:
        return f"GPU delegate: not checked for {', '.join(sorted(report['not_checked']))}"
    return f"GPU delegate: all {report['ops']} ops supported"
