"""Candidate implementations of the ECA layer, measured at model level against the plain twin.

    python benchmarks/eca_candidates.py [--candidates current,shift,...] [--rounds 5]
                                        [--settings xla_b1,graph_b1,...,tflite]
                                        [--train-size 224] [--min-seconds 1.0]

Each candidate is a subclass of :class:`eca_keras.layers.ECA` that overrides ``channel_weights``
(and/or ``call``) with Keras 3 ops only, so it runs on every backend. It is swapped into a built
ECA model with ``keras.models.clone_model`` (ECA layers rebuilt from their config as the candidate
class, every other layer as itself) and given the same weights.

What is measured, all on the CPU, in one process per backend:

* parity: the candidate's gates against the current layer's on random inputs for a set of
  layer configurations (ranks 3/4/5, channels_first, circular padding, k = 1..9), and the
  candidate model's output against the current model's (max abs difference / max abs value);
* ``xla_b1``, ``xla_b8``: inference of ECA-ResNet50 at 224 px, batch 1 and 8, under
  ``tf.function(jit_compile=True)``;
* ``graph_b1``, ``graph_b8``, ``graph_mnv2_b1``: the same without XLA (``tf.function`` graph
  mode, what Keras runs on a CPU by default), and ECA-MobileNetV2 at batch 1;
* ``train_b8``, ``train_graph_b8``: one ``train_on_batch`` step (SGD with momentum, sparse CE,
  ``jit_compile=True`` / ``False``) of ECA-ResNet50 at batch 8 (``--train-size`` px);
* ``jax_b1``: inference of ECA-ResNet50 at 224 px, batch 1, ``jax.jit`` of a stateless call
  (run in a child process with ``KERAS_BACKEND=jax``);
* ``tflite``: ECA-MobileNetV2 at 224 px, batch 1, float32 and int8 (random calibration),
  LiteRT interpreter with 1 thread.

Every setting times the plain twin (``attention=False``) and each candidate in rounds; a round
runs every side for about ``--min-seconds`` (the iteration count is calibrated once), the order
of the sides is reversed on alternate rounds, and the reported figure is the median over
``--rounds`` rounds of the per-round ratio ``twin time / candidate time`` (the candidate's
throughput relative to the twin: 0.95 means 5% slower than the twin). Medians of the absolute
times are recorded in the JSON as well.

Writes ``benchmarks/results/eca_candidates.json`` and ``eca_candidates.md``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SETTINGS = ("xla_b1", "xla_b8", "graph_b1", "graph_b8", "graph_mnv2_b1", "train_b8",
            "train_graph_b8", "jax_b1", "tflite")  # fmt: skip
ALL_CANDIDATES = (
    "current",
    "conv_input",
    "conv_descriptor",
    "shift",
    "reshape_shift",
    "sum_scale_shift",
    "two_stage_shift",
    "matmul_shift",
    "stack_dot",
)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", default=",".join(ALL_CANDIDATES))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--train-size", type=int, default=224)
    parser.add_argument(
        "--train-candidates",
        default=None,
        help="candidates for train_b8 (default: all selected; a training compile takes ~70 s)",
    )
    parser.add_argument(
        "--tflite-candidates", default=None, help="candidates for tflite (default: all selected)"
    )
    parser.add_argument("--note", action="append", default=[], help="a note under the table")
    parser.add_argument("--json-out", default=None, help="child-process output (internal)")
    parser.add_argument("--no-publish", action="store_true")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="overwrite the results file instead of merging this run's settings into it",
    )
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------------
# Candidates (defined lazily: keras must be imported after KERAS_BACKEND is set)


def make_candidates():
    import math

    from keras import ops

    from eca_keras.layers import ECA

    def spatial_axes(layer, rank):
        if layer.data_format == "channels_last":
            return tuple(range(1, rank - 1))
        return tuple(range(2, rank))

    def spatial_size(layer, inputs):
        """Number of spatial positions: a Python int when static, else a tensor."""
        rank = len(inputs.shape)
        dims = [inputs.shape[a] for a in spatial_axes(layer, rank)]
        if all(d is not None for d in dims):
            return math.prod(dims)
        shape = ops.shape(inputs)
        size = 1
        for a in spatial_axes(layer, rank):
            size = size * shape[a]
        return size

    def shift_conv(layer, pooled):
        """conv1d across channels as ``sum_j w[j] * padded[:, j:j+C]`` on (batch, C) float32."""
        k, channels = layer.kernel_size_, layer.channels
        half = (k - 1) // 2
        kernel = ops.reshape(ops.cast(layer.kernel, "float32"), (k,))
        if half == 0:
            return pooled * kernel[0]
        if layer.padding == "circular":
            padded = ops.take(pooled, layer._circular_index, axis=1)
        else:
            padded = ops.pad(pooled, [[0, 0], [half, half]])
        attention = padded[:, 0:channels] * kernel[0]
        for j in range(1, k):
            attention = attention + padded[:, j : j + channels] * kernel[j]
        return attention

    class Shift(ECA):
        """mean over spatial axes + shift-and-add conv1d."""

        def pool(self, inputs):
            return ops.mean(inputs, axis=spatial_axes(self, len(inputs.shape)))

        def channel_weights(self, inputs, descriptor=None):
            if not self.built:
                self.build(inputs.shape)
            pooled = ops.cast(self.pool(inputs), "float32")
            return ops.sigmoid(shift_conv(self, pooled))

    class ReshapeShift(Shift):
        """reshape to (B, H*W, C) (or (B, C, H*W)), mean over the flat axis."""

        def pool(self, inputs):
            if self.data_format == "channels_last":
                flat = ops.reshape(inputs, (-1, spatial_size(self, inputs), self.channels))
                return ops.mean(flat, axis=1)
            flat = ops.reshape(inputs, (-1, self.channels, spatial_size(self, inputs)))
            return ops.mean(flat, axis=2)

    class SumScaleShift(Shift):
        """sum over spatial axes, then multiply by 1/N (the scale folded into the conv input)."""

        def pool(self, inputs):
            total = ops.sum(inputs, axis=spatial_axes(self, len(inputs.shape)))
            n = spatial_size(self, inputs)
            if isinstance(n, int):
                return total * (1.0 / n)
            return total / ops.cast(n, total.dtype)

    class TwoStageShift(Shift):
        """mean over the innermost spatial axis first, then over the others."""

        def pool(self, inputs):
            axes = spatial_axes(self, len(inputs.shape))
            inner = ops.mean(inputs, axis=axes[-1])
            if len(axes) == 1:
                return inner
            return ops.mean(inner, axis=axes[:-1])

    class MatmulShift(Shift):
        """pooling as a batched matmul with a constant 1/N row (a dot instead of a reduce)."""

        def pool(self, inputs):
            n = spatial_size(self, inputs)
            if self.data_format == "channels_last":
                flat = ops.reshape(inputs, (-1, n, self.channels))
                row = ops.full((1, 1, n), 1.0 / n, dtype=inputs.dtype)
                return ops.squeeze(ops.matmul(row, flat), 1)
            flat = ops.reshape(inputs, (-1, self.channels, n))
            col = ops.full((1, n, 1), 1.0 / n, dtype=inputs.dtype)
            return ops.squeeze(ops.matmul(flat, col), -1)

    class StackDot(Shift):
        """mean pooling + conv1d as a (B, C, k) stack of shifted windows times the kernel."""

        def channel_weights(self, inputs, descriptor=None):
            if not self.built:
                self.build(inputs.shape)
            pooled = ops.cast(self.pool(inputs), "float32")
            k, channels = self.kernel_size_, self.channels
            half = (k - 1) // 2
            kernel = ops.reshape(ops.cast(self.kernel, "float32"), (k,))
            if self.padding == "circular":
                padded = ops.take(pooled, self._circular_index, axis=1)
            else:
                padded = ops.pad(pooled, [[0, 0], [half, half]])
            windows = ops.stack([padded[:, j : j + channels] for j in range(k)], axis=-1)
            return ops.sigmoid(ops.matmul(windows, kernel))

    class ConvDescriptor(ECA):
        """the descriptor as shipped, but the channel convolution always one ops.conv."""

        def channel_weights(self, inputs, descriptor=None):
            if not self.built:
                self.build(inputs.shape)
            if descriptor is None:
                pooled = ops.mean(inputs, axis=spatial_axes(self, len(inputs.shape)))
            else:
                pooled = ops.reshape(descriptor, (-1, self.channels))
            pooled = ops.expand_dims(ops.cast(pooled, "float32"), -1)
            padding = "same"
            if self.padding == "circular" and self.kernel_size_ > 1:
                pooled, padding = ops.take(pooled, self._circular_index, axis=1), "valid"
            kernel = ops.cast(self.kernel, "float32")
            attention = ops.conv(pooled, kernel, padding=padding, data_format="channels_last")
            return ops.sigmoid(ops.squeeze(attention, -1))

    class ConvInput(ConvDescriptor):
        """the layer before the descriptor: pools its input, one ops.conv, on every path."""

        def call(self, inputs, descriptor=None, training=None):
            return super().call(inputs, None, training)

    return {
        "current": ECA,
        "conv_input": ConvInput,
        "conv_descriptor": ConvDescriptor,
        "shift": Shift,
        "reshape_shift": ReshapeShift,
        "sum_scale_shift": SumScaleShift,
        "two_stage_shift": TwoStageShift,
        "matmul_shift": MatmulShift,
        "stack_dot": StackDot,
    }


DESCRIPTIONS = {
    "current": "layers.ECA as it is in the working tree",
    "conv_input": "the layer up to 2026-11: mean of its input + one ops.conv, whatever compiles it",
    "conv_descriptor": "the descriptor (pooled before the BatchNorm) under XLA, always ops.conv",
    "shift": "mean over spatial axes + shift-and-add conv1d",
    "reshape_shift": "reshape to (B, HW, C), mean over HW + shift-and-add",
    "sum_scale_shift": "sum over spatial axes * (1/N) + shift-and-add",
    "two_stage_shift": "mean over W, then over H + shift-and-add",
    "matmul_shift": "pooling as matmul with a constant 1/N row + shift-and-add",
    "stack_dot": "mean + (B, C, k) stack of shifted windows @ kernel",
}


# --------------------------------------------------------------------------------------------
# Models, parity


def swap(model, cls):
    """A clone of ``model`` whose ECA layers are ``cls``, with the same weights."""
    import keras

    from eca_keras.layers import ECA

    def clone(layer):
        if isinstance(layer, ECA):
            return cls.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    clone_model = keras.models.clone_model(model, clone_function=clone)
    clone_model.set_weights(model.get_weights())
    return clone_model


LAYER_CASES = [  # (shape, data_format, k, padding)
    ((2, 11, 7), "channels_last", 3, "zeros"),
    ((2, 5, 6, 16), "channels_last", 5, "zeros"),
    ((2, 5, 6, 16), "channels_last", 5, "circular"),
    ((2, 16, 5, 6), "channels_first", 3, "zeros"),
    ((2, 16, 5, 6), "channels_first", 3, "circular"),
    ((2, 3, 4, 5, 8), "channels_last", 3, "circular"),
    ((2, 8, 3, 4, 5), "channels_first", 7, "zeros"),
    ((3, 4, 4, 6), "channels_last", 1, "zeros"),
    ((1, 2, 2, 3), "channels_last", 9, "circular"),
    ((2, 7, 7, 2048), "channels_last", 7, "zeros"),
]


def layer_parity(base, cls):
    """Max relative error of the candidate's layer output over LAYER_CASES."""
    import keras
    import numpy as np

    worst = 0.0
    rng = np.random.default_rng(0)
    for shape, data_format, k, padding in LAYER_CASES:
        x = rng.normal(size=shape).astype("float32")
        kernel = rng.normal(size=(k, 1, 1)).astype("float32")
        outs = []
        for c in (base, cls):
            layer = c(kernel_size=k, padding=padding, data_format=data_format)
            layer.build(shape)
            layer.kernel.assign(kernel)
            outs.append(keras.ops.convert_to_numpy(layer(x)).astype("float64"))
        err = np.max(np.abs(outs[0] - outs[1])) / max(np.max(np.abs(outs[0])), 1e-30)
        worst = max(worst, float(err))
    return worst


def relative_difference(reference, output):
    """max |output - reference| / max |reference|."""
    import keras
    import numpy as np

    a = keras.ops.convert_to_numpy(reference).astype("float64")
    b = keras.ops.convert_to_numpy(output).astype("float64")
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30))


# --------------------------------------------------------------------------------------------
# Interleaved timing


def interleaved(runners, rounds, min_seconds, label):
    """``runners``: {name: zero-argument callable doing one iteration (synchronised)}; the first
    key is the reference (the plain twin). Timed by :func:`eca_keras.benchmark.timing.compare`;
    returns {name: {"median_ms", "ratio" (median per-round twin/candidate), ...}}."""
    from eca_keras.benchmark import timing

    log(f"[{label}] timing {', '.join(runners)} ({rounds} rounds)")
    timings = timing.compare(runners, rounds, min_seconds)
    reference = timings[next(iter(runners))]
    out = {}
    for name, measured in timings.items():
        ratios = [twin / own for twin, own in zip(reference.rounds, measured.rounds, strict=True)]
        out[name] = {
            "median_ms": 1000 * measured.seconds,
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "iterations": measured.calls_per_round,
        }
        log(f"[{label}] {name}: {out[name]['median_ms']:.2f} ms, ratio {out[name]['ratio']:.3f}")
    return out


def log(message):
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Settings


TF_INFERENCE = {  # setting: (model, batch, XLA)
    "xla_b1": ("eca_resnet50", 1, True),
    "xla_b8": ("eca_resnet50", 8, True),
    "graph_b1": ("eca_resnet50", 1, False),  # tf.function without XLA: Keras' CPU default
    "graph_b8": ("eca_resnet50", 8, False),
    "graph_mnv2_b1": ("eca_mobilenet_v2", 1, False),
}


def tf_inference(classes, setting, args):
    import numpy as np
    import tensorflow as tf

    from eca_keras.applications import get_model

    model_name, batch, xla = TF_INFERENCE[setting]
    shape = (224, 224, 3)
    eca = get_model(model_name, weights=None, input_shape=shape, attention=True)
    plain = get_model(model_name, weights=None, input_shape=shape, attention=False)
    x = tf.constant(np.random.default_rng(1).normal(size=(batch, *shape)).astype("float32"))
    runners = {"plain": None}
    models = {"plain": plain}
    for name, cls in classes.items():
        models[name] = eca if name == "current" else swap(eca, cls)
    outputs = {}
    for name, m in models.items():
        fn = tf.function(lambda v, m=m: m(v, training=False), jit_compile=xla)
        log(f"compiling {name} ({setting})")
        outputs[name] = fn(x)
        runners[name] = lambda fn=fn: fn(x).numpy()
    # Parity in the setting's own mode: under XLA the shipped layer takes other paths.
    if "current" in outputs:
        reference = outputs["current"]
    else:
        reference = tf.function(lambda v: eca(v, training=False), jit_compile=xla)(x)
    parity = {
        name: relative_difference(reference, output)
        for name, output in outputs.items()
        if name != "plain"
    }
    result = interleaved(runners, args.rounds, args.min_seconds, setting)
    return result, parity


def tf_train(classes, args, xla=True):
    import keras
    import numpy as np

    from eca_keras.applications import get_model

    size = args.train_size
    shape = (size, size, 3)
    batch = 8
    rng = np.random.default_rng(2)
    x = rng.normal(size=(batch, *shape)).astype("float32")
    y = rng.integers(0, 1000, size=(batch,)).astype("int32")
    eca = get_model("eca_resnet50", weights=None, input_shape=shape, attention=True)
    models = {"plain": get_model("eca_resnet50", weights=None, input_shape=shape, attention=False)}
    for name, cls in classes.items():
        models[name] = swap(eca, cls)
    runners = {}
    for name, m in models.items():
        m.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile=xla,
        )
        log(f"compiling training step of {name} ({size} px, XLA {xla})")
        start = time.perf_counter()
        m.train_on_batch(x, y)
        log(f"  compiled in {time.perf_counter() - start:.0f} s")
        runners[name] = lambda m=m: m.train_on_batch(x, y)
    return interleaved(
        runners, args.rounds, args.min_seconds, "train_b8" if xla else "train_graph_b8"
    )


def jax_inference(classes, args):
    import jax
    import numpy as np

    from eca_keras.applications import get_model

    shape = (224, 224, 3)
    eca = get_model("eca_resnet50", weights=None, input_shape=shape, attention=True)
    plain = get_model("eca_resnet50", weights=None, input_shape=shape, attention=False)
    x = jax.numpy.asarray(np.random.default_rng(1).normal(size=(1, *shape)).astype("float32"))
    models = {"plain": plain}
    for name, cls in classes.items():
        models[name] = eca if name == "current" else swap(eca, cls)
    reference = eca(x, training=False)
    parity = {
        name: relative_difference(reference, m(x, training=False))
        for name, m in models.items()
        if name != "plain"
    }
    runners = {}
    for name, m in models.items():
        trainable = [v.value for v in m.trainable_variables]
        non_trainable = [v.value for v in m.non_trainable_variables]

        @jax.jit
        def fn(tv, ntv, v, m=m):
            return m.stateless_call(tv, ntv, v, training=False)[0]

        log(f"compiling {name} (jax)")
        fn(trainable, non_trainable, x).block_until_ready()
        runners[name] = lambda fn=fn, t=trainable, n=non_trainable: fn(t, n, x).block_until_ready()
    return interleaved(runners, args.rounds, args.min_seconds, "jax_b1"), parity


def tflite(classes, args):
    import numpy as np

    from eca_keras.applications import get_model
    from eca_keras.artifacts import TFLiteArtifact
    from eca_keras.export.tflite import write_tflite

    size = 224
    shape = (size, size, 3)
    eca = get_model("eca_mobilenet_v2", weights=None, input_shape=shape, attention=True)
    models = {
        "plain": get_model("eca_mobilenet_v2", weights=None, input_shape=shape, attention=False)
    }
    for name, cls in classes.items():
        models[name] = eca if name == "current" else swap(eca, cls)
    rng = np.random.default_rng(3)
    calibration = [rng.uniform(0, 255, shape).astype("float32") for _ in range(8)]
    results, ops_used = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for quantize in ("none", "int8"):
            runners = {}
            for name, m in models.items():
                log(f"converting {name} ({quantize})")
                path = os.path.join(work, f"{name}_{quantize}.tflite")
                ops_used[f"{name}/{quantize}"] = write_tflite(m, path, size, quantize, calibration)
                artifact = TFLiteArtifact(path, num_threads=1)
                image = rng.integers(0, 128, (1, *shape)).astype(artifact.input_dtype)
                runners[name] = lambda a=artifact, i=image: a.invoke(i)
            label = "tflite_f32" if quantize == "none" else "tflite_int8"
            results[label] = interleaved(runners, args.rounds, args.min_seconds, label)
    return results, ops_used


# --------------------------------------------------------------------------------------------


def markdown(data):
    settings = [s for s in data["settings_order"] if s in data["results"]]
    names = data["candidates"]
    lines = [
        "ECA implementation candidates: throughput of each model relative to its plain twin "
        "(twin time / model time, median of interleaved rounds; 1.000 = no overhead, 0.95 = "
        f"5% slower). {data['machine']}. Parity: max relative error vs the current layer "
        "(layer cases, eager / ECA-ResNet50 output in each setting's mode, the largest).",
        "",
        "| candidate | " + " | ".join(settings) + " | parity (layer) | parity (model) |",
        "|---|" + "---:|" * len(settings) + "---:|---:|",
    ]
    for name in names:
        cells = []
        for s in settings:
            entry = data["results"][s].get(name)
            cells.append(f"{entry['ratio']:.3f}" if entry else "-")
        lp = data["parity_layer"].get(name)
        mp = data["parity_model"].get(name)
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {lp:.1e} | "
            + (f"{mp:.1e}" if mp is not None else "-")
            + " |"
        )
    lines += ["", "Plain-twin and candidate median times (ms):", ""]
    lines.append("| setting | plain | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * (len(names) + 1))
    for s in settings:
        row = data["results"][s]
        cells = [f"{row[n]['median_ms']:.2f}" if n in row else "-" for n in ["plain", *names]]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "Candidates:", ""]
    lines += [f"- `{n}`: {DESCRIPTIONS[n]}" for n in names]
    if data.get("notes"):
        lines += ["", *data["notes"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    names = [n for n in args.candidates.split(",") if n]
    settings = [s for s in args.settings.split(",") if s]
    unknown = [n for n in names if n not in ALL_CANDIDATES] + [
        s for s in settings if s not in SETTINGS
    ]
    if unknown:
        raise SystemExit(f"unknown candidates/settings: {unknown}")
    sys.path.insert(0, ROOT)

    if args.json_out:  # child process (jax backend)
        import keras

        classes = {n: c for n, c in make_candidates().items() if n in names}
        result, parity = jax_inference(classes, args)
        with open(args.json_out, "w") as handle:
            json.dump(
                {"result": result, "parity": parity, "backend": keras.backend.backend()}, handle
            )
        return

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    from eca_keras.benchmark import suite

    classes_all = make_candidates()
    classes = {n: classes_all[n] for n in names}
    data = {
        "machine": f"{suite.machine()['processor']}, {os.cpu_count()} cores, Keras "
        f"{keras.__version__}",
        "candidates": names,
        "settings_order": [
            *TF_INFERENCE,
            "train_b8",
            "train_graph_b8",
            "jax_b1",
            "tflite_f32",
            "tflite_int8",
        ],  # fmt: skip
        "rounds": args.rounds,
        "min_seconds": args.min_seconds,
        "train_size": args.train_size,
        "results": {},
        "parity_layer": {},
        "parity_model": {},
        "parity_model_jax": {},
        "notes": args.note,
    }
    for name in names:
        data["parity_layer"][name] = layer_parity(classes_all["current"], classes[name])
        log(f"layer parity {name}: {data['parity_layer'][name]:.2e}")
    for setting in TF_INFERENCE:
        if setting in settings:
            result, parity = tf_inference(classes, setting, args)
            data["results"][setting] = result
            for n, e in parity.items():
                data["parity_model"][n] = max(e, data["parity_model"].get(n, 0.0))
    chosen = args.train_candidates.split(",") if args.train_candidates else names
    for setting, xla in (("train_b8", True), ("train_graph_b8", False)):
        if setting in settings:
            data["results"][setting] = tf_train({n: classes_all[n] for n in chosen if n}, args, xla)
    if "jax_b1" in settings:
        with tempfile.TemporaryDirectory() as work:
            out = os.path.join(work, "jax.json")
            command = [sys.executable, os.path.abspath(__file__), "--json-out", out]
            command += ["--candidates", ",".join(names), "--settings", "jax_b1"]
            command += ["--rounds", str(args.rounds), "--min-seconds", str(args.min_seconds)]
            subprocess.run(command, check=True, env={**os.environ, "KERAS_BACKEND": "jax"})
            with open(out) as handle:
                child = json.load(handle)
        data["results"]["jax_b1"] = child["result"]
        data["parity_model_jax"] = child["parity"]
    if "tflite" in settings:
        chosen = args.tflite_candidates.split(",") if args.tflite_candidates else names
        results, ops_used = tflite({n: classes_all[n] for n in chosen if n}, args)
        data["results"].update(results)
        data["tflite_ops"] = ops_used
    table = markdown(data)
    if args.no_publish:
        print(table)
    else:
        sys.path.insert(0, HERE)
        from results_io import RESULTS, publish

        previous = os.path.join(RESULTS, "eca_candidates.json")
        if not args.fresh and os.path.exists(previous):
            with open(previous) as handle:
                old = json.load(handle)
            for key in ("results", "parity_layer", "parity_model", "parity_model_jax"):
                old.setdefault(key, {}).update(data[key])
            old["candidates"] = old["candidates"] + [n for n in names if n not in old["candidates"]]
            old.setdefault("tflite_ops", {}).update(data.get("tflite_ops", {}))
            old["notes"] = args.note or old.get("notes", [])
            kept = {k: v for k, v in old.items() if k not in ("machine", "settings_order")}
            data = {**data, **kept}
            table = markdown(data)
        publish("eca_candidates", data, table)


if __name__ == "__main__":
    main()
