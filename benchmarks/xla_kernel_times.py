"""Where the XLA program's time goes: per-kernel times of a model and its plain twin.

    python benchmarks/xla_kernel_times.py [--model ecaresnet269d] [--size 320] [--batch 1]
        [--steps 3] [--top 15]

Compiles ``model(x, training=False)`` with ``jit_compile=True`` for the ECA model and its plain
twin, runs ``--steps`` steps of each under TensorFlow's profiler with the XLA CPU runtime's
per-kernel trace events on (``--xla_cpu_enable_xprof_traceme``), and prints, per program, the
step time and the kernels that take the longest, then the time by kind of kernel (the name
without its number: ``add_maximum_fusion``, ``convolution``, ...) side by side. This is how the
recomputed residual chains (see ``eca_keras.layers.ResidualReLU``) were found: before it,
ecaresnet269d's eight slowest kernels were stage-3 block outputs of 7-87 ms each.
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


def kernel_times(model, images, steps):
    """({kernel: ms per step}, program ms per step) of ``model`` compiled by XLA."""
    forward = tf.function(lambda x: model(x, training=False), jit_compile=True)
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
                if name == RUNTIME_EVENT:
                    program += milliseconds
                elif KERNEL.match(name):
                    kernels[name] += milliseconds
    return kernels, program


def by_kind(kernels):
    kinds = collections.Counter()
    for name, milliseconds in kernels.items():
        kinds[re.sub(r"\.\d+$", "", name)] += milliseconds
    return kinds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ecaresnet269d")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    shape = (args.size, args.size, 3)
    images = tf.constant(np.random.default_rng(0).uniform(-2, 2, (args.batch, *shape)), "float32")
    results = {}
    for label, attention in (("ECA", True), ("plain", False)):
        model = get_model(args.model, weights=None, input_shape=shape, attention=attention)
        results[label] = kernel_times(model, images, args.steps)
        kernels, program = results[label]
        print(f"\n{label}: {program:.1f} ms per step; slowest kernels (ms):")
        for name, milliseconds in kernels.most_common(args.top):
            print(f"  {milliseconds:9.2f}  {name}")
    kinds = {label: by_kind(kernels) for label, (kernels, _) in results.items()}
    print(f"\n{'kind of kernel':<36} {'ECA ms':>9} {'plain ms':>9}")
    order = sorted(set(kinds["ECA"]) | set(kinds["plain"]), key=lambda k: -kinds["ECA"][k])
    for kind in order[: args.top]:
        print(f"{kind:<36} {kinds['ECA'][kind]:9.2f} {kinds['plain'][kind]:9.2f}")


if __name__ == "__main__":
    main()
