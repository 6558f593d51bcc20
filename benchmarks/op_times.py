"""Where a model's time goes: per-kernel (XLA) or per-op (TensorFlow graph) times of a model
and its plain twin.

    python benchmarks/op_times.py [--model ecaresnet269d] [--size 320] [--batch 1] [--steps 3]
        [--top 15] [--graph [--layer conv3_block2_]]

Traces ``model(x, training=False)`` for the ECA model and its plain twin, runs ``--steps`` steps
of each under TensorFlow's profiler and prints, per model, the kernels or ops that take the
longest, then the time by kind (the kernel's name without its number, ``add_maximum_fusion``; the
op's type, ``Mul``) side by side.

* XLA (default): compiled with ``jit_compile=True``, with the XLA CPU runtime's per-kernel trace
  events on (``--xla_cpu_enable_xprof_traceme``). This is how the recomputed residual chains
  (see ``eca_keras.layers.ResidualReLU``) were found: before it, ecaresnet269d's eight slowest
  kernels were stage-3 block outputs of 7-87 ms each.
* ``--graph``: a ``tf.function`` without XLA (Keras' default on a CPU), the executor's per-op
  events; ``--layer PREFIX`` also lists every op of the layers whose names start with it (say
  ``conv3_block2_`` or ``block10_``). This is how 0.3.2's graph-mode costs were found: a oneDNN
  convolution call on the pooled 1x1 image (146 us in ECA-ResNet50's ``conv3_block2``, 14 us as
  a matrix product) and 0.3.1's ``FusedBatchNormV3`` output (40-50 us where a multiply and an add
  take 5-10).
"""

import argparse
import collections
import glob
import os
import re
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
).strip()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from eca_keras.applications import get_model  # noqa: E402

RUNTIME_EVENT = "CpuExecutable::ExecuteAsyncOnStream"
KERNEL = re.compile(r"^[a-z][\w-]*(\.\d+)?$")  # HLO instruction names: "add_maximum_fusion.21"
GRAPH_OP = re.compile(r"^[^:]+/[^:/]+:\w+$")  # executor events: "model/conv1_bn/mul:Mul"


def kernel_times(model, images, steps, xla=True):
    """({kernel or op: ms per step}, program ms per step) of ``model``: XLA kernels, or the
    ops of its TensorFlow graph (``xla=False``; the program time is then the ops' sum)."""
    forward = tf.function(lambda x: model(x, training=False), jit_compile=xla)
    forward(images).numpy()
    forward(images).numpy()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            forward(images).numpy()
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
    kernels, program = collections.Counter(), 0.0
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                milliseconds = event.duration_ps / 1e9 / steps
                if xla and name == RUNTIME_EVENT:
                    program += milliseconds
                elif (KERNEL if xla else GRAPH_OP).match(name):
                    kernels[name] += milliseconds
    return kernels, program if xla else sum(kernels.values())


def by_kind(kernels):
    """Times summed by kernel kind (XLA) or op type (graph, after the ``:``)."""
    kinds = collections.Counter()
    for name, milliseconds in kernels.items():
        kind = name.rsplit(":", 1)[1] if ":" in name else re.sub(r"\.\d+$", "", name)
        kinds[kind] += milliseconds
    return kinds


def layer_ops(kernels, prefix):
    """The ops of the layers named ``prefix...`` (graph names: ``model/layer_1/op:Type``)."""
    return sorted(
        (name.split("/", 1)[1], ms) for name, ms in kernels.items() if f"/{prefix}" in name
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ecaresnet269d")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--graph", action="store_true", help="a TensorFlow graph, no XLA")
    parser.add_argument("--layer", help="with --graph: list the ops of layers named PREFIX...")
    args = parser.parse_args()
    shape = (args.size, args.size, 3)
    images = tf.constant(np.random.default_rng(0).uniform(-2, 2, (args.batch, *shape)), "float32")
    results = {}
    for label, attention in (("ECA", True), ("plain", False)):
        model = get_model(args.model, weights=None, input_shape=shape, attention=attention)
        results[label] = kernel_times(model, images, args.steps, xla=not args.graph)
        kernels, program = results[label]
        what = "ops" if args.graph else "kernels"
        print(f"\n{label}: {program:.1f} ms per step; slowest {what} (ms):")
        for name, milliseconds in kernels.most_common(args.top):
            print(f"  {milliseconds:9.2f}  {name}")
        if args.graph and args.layer:
            print(f"\n{label}: the ops of {args.layer}... (us)")
            for name, milliseconds in layer_ops(kernels, args.layer):
                print(f"  {milliseconds * 1000:9.1f}  {name}")
    kinds = {label: by_kind(kernels) for label, (kernels, _) in results.items()}
    print(f"\n{'kind':<36} {'ECA ms':>9} {'plain ms':>9}")
    order = sorted(set(kinds["ECA"]) | set(kinds["plain"]), key=lambda k: -kinds["ECA"][k])
    for kind in order[: args.top]:
        print(f"{kind:<36} {kinds['ECA'][kind]:9.2f} {kinds['plain'][kind]:9.2f}")


if __name__ == "__main__":
    main()
