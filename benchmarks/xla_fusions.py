"""What ECA adds to the XLA program: the optimized HLO of a model and its plain twin, counted.

    python benchmarks/xla_fusions.py [--model eca_resnet50] [--size 224]

Compiles ``model(x, training=False)`` with ``jit_compile=True`` at batch 1 for both variants and
prints the instruction counts of the optimized HLO's entry computation (fusions by kind,
convolutions, dots) and their difference, the floats its kernels write per image (the memory
traffic ECA adds), the largest fusion of each program (how many operands it reads), plus the HLO
around the first ECA layer.
"""

import argparse
import collections
import math
import re

import numpy as np
import tensorflow as tf

from eca_keras.applications import get_model


def optimized_hlo(name, size, attention):
    model = get_model(name, weights=None, input_shape=(size, size, 3), attention=attention)
    images = tf.constant(np.zeros((1, size, size, 3), "float32"))
    forward = tf.function(lambda x: model(x, training=False), jit_compile=True)
    return forward.experimental_get_compiler_ir(images)(stage="optimized_hlo")


def entry_counts(hlo):
    """``Counter`` of opcodes in the entry computation; fusions also by kind."""
    counts = collections.Counter()
    for line in hlo[hlo.index("ENTRY") :].splitlines()[1:]:
        opcode = re.search(r"= \S+ ([\w-]+)\(", line)
        if opcode:
            counts[opcode.group(1)] += 1
        kind = re.search(r"kind=(\w+)", line)
        if kind:
            counts[f"fusion {kind.group(1)}"] += 1
    return counts


def floats_written(hlo):
    """Elements of the float32 results of the entry computation's kernels (fusions, dots,
    convolutions, custom calls), i.e. what the program writes to memory, for batch 1."""
    total = 0
    for line in hlo[hlo.index("ENTRY") :].splitlines()[1:]:
        result = re.search(r"= f32\[([\d,]*)\]\S* (?:fusion|dot|convolution|custom-call)\(", line)
        if result:
            total += math.prod(int(d) for d in result.group(1).split(",") if d)
    return total


def largest_fusion(hlo):
    """(operands, name) of the fusion that reads the most operands: a ResNet stage whose block
    outputs XLA recomputes inside each block's add shows one that grows with the stage's depth
    (see ``eca_keras.layers.ResidualReLU``)."""
    fusions = re.findall(r"(%\S+) = \S+ fusion\((.*?)\), kind=", hlo)
    return max((arguments.count("%"), name) for name, arguments in fusions)


def first_eca_layer(hlo):
    lines = hlo[hlo.index("ENTRY") :].splitlines()
    marks = [i for i, line in enumerate(lines) if "_eca" in line]
    if not marks:
        return []
    return [line[:160] for line in lines[max(marks[0] - 2, 0) : marks[0] + 5]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="eca_resnet50")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    plain_hlo = optimized_hlo(args.model, args.size, False)
    plain = entry_counts(plain_hlo)
    hlo = optimized_hlo(args.model, args.size, True)
    eca = entry_counts(hlo)
    print(f"{'instruction':<16} {'plain':>6} {'ECA':>6} {'added':>6}")
    for key in sorted(set(plain) | set(eca), key=lambda k: -eca[k]):
        print(f"{key:<16} {plain[key]:>6} {eca[key]:>6} {eca[key] - plain[key]:>+6}")
    written, plain_written = floats_written(hlo), floats_written(plain_hlo)
    print(
        f"\nfloats written per image: plain {plain_written:,}, ECA {written:,} "
        f"(+{written - plain_written:,}, {100 * (written / plain_written - 1):+.2f}%)"
    )
    for label, program in (("plain", plain_hlo), ("ECA", hlo)):
        operands, name = largest_fusion(program)
        print(f"largest fusion, {label}: {name} reads {operands} operands")
    print("\nAround the first ECA layer:")
    print("\n".join(first_eca_layer(hlo)))


if __name__ == "__main__":
    main()
