"""RetinaNet throughput: the same keras-hub RetinaNet head on ECA-ResNet50, on its plain twin
(``attention=False``) and on keras-hub's own ResNet50 (v1, ``ResNetBackbone``).

    python benchmarks/retinanet_table.py [--size 512] [--batch-sizes 1 8] [--rounds 5]
                                         [--quick] [--update-readme]

For each input size and batch: inference (the network's forward pass to its box and class
outputs, in a ``tf.function``, with and without XLA; decoding and non-maximum suppression are
the same for all three and left out) and a training step (``train_on_batch`` with keras-hub's
focal and Huber losses, AdamW, graph mode) on random pixels with three boxes per image. The three
sides of a row alternate in rounds (:func:`eca_keras.benchmark.timing.compare`); ratios compare
sides of the same run. Writes ``benchmarks/results/retinanet.{json,md}``; ``--update-readme`` puts
the table into README.md between its ``retinanet-table`` markers. ``--quick``: 128 px, batch 2,
one round, printed only (a smoke run, not a measurement).

Needs keras-hub (``pip install 'eca-keras[detection]'``). Random weights: timing only.
"""

import argparse
import platform

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from results_io import publish

from eca_keras.benchmark.timing import compare
from eca_keras.tasks.models import build_detector

SIDES = ("ECA-ResNet50", "ResNet50 (plain twin)", "keras-hub ResNet50")
KERAS_HUB_RESNET50 = dict(  # keras-hub's resnet_50_imagenet preset (ResNet v1)
    input_conv_filters=[64],
    input_conv_kernel_sizes=[7],
    stackwise_num_filters=[64, 128, 256, 512],
    stackwise_num_blocks=[3, 4, 6, 3],
    stackwise_num_strides=[1, 2, 2, 2],
    block_type="bottleneck_block",
)
HEAD = dict(min_level=3, max_level=7, head_convs=4, anchor_size=4.0)  # the paper's RetinaNet


def detector(side, size, num_classes=80):
    if side == "keras-hub ResNet50":
        encoder = keras_hub.models.ResNetBackbone(image_shape=(size, size, 3), **KERAS_HUB_RESNET50)
        backbone = keras_hub.models.RetinaNetBackbone(
            image_encoder=encoder,
            min_level=HEAD["min_level"],
            max_level=HEAD["max_level"],
            use_p5=False,
            image_shape=(size, size, 3),
        )
        return keras_hub.models.RetinaNetObjectDetector(
            backbone=backbone,
            num_classes=num_classes,
            bounding_box_format="xyxy",
            anchor_generator=keras_hub.layers.AnchorGenerator(
                "xyxy",
                min_level=HEAD["min_level"],
                max_level=HEAD["max_level"],
                num_scales=3,
                aspect_ratios=[0.5, 1.0, 2.0],
                anchor_size=HEAD["anchor_size"],
            ),
            pre_logits_num_conv_layers=HEAD["head_convs"],
        )
    return build_detector(
        "eca_resnet50", num_classes, size, attention=side == "ECA-ResNet50", **HEAD
    )


def batch(size, count, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(count, size, size, 3)).astype("float32")  # already normalised
    corners = rng.uniform(0, size * 0.6, (count, 3, 2))
    sides = rng.uniform(size * 0.1, size * 0.4, (count, 3, 2))
    boxes = np.concatenate([corners, corners + sides], axis=-1).astype("float32")
    labels = rng.integers(0, 80, (count, 3)).astype("float32")
    return tf.constant(images), {"boxes": tf.constant(boxes), "labels": tf.constant(labels)}


def step(model, mode, images, targets, xla):
    if mode == "inference":
        forward = tf.function(lambda x: model(x, training=False), jit_compile=xla)
        return lambda: tf.nest.map_structure(lambda t: t.numpy(), forward(images))
    model.preprocessor = None  # the batch is already normalised
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    model.optimizer.build(model.trainable_variables)
    # keras-hub's PipelineModel.train_on_batch turns the targets into one tensor (it cannot take
    # the boxes/labels dict); Keras' own takes it as fit does.
    return lambda: keras.Model.train_on_batch(model, images, targets)


def measure(sizes, batch_sizes, rounds, min_round_seconds):
    rows = []
    for size in sizes:
        for count in batch_sizes:
            images, targets = batch(size, count)
            for mode, xla in (("inference", True), ("inference", False), ("training", False)):
                contenders = {
                    side: step(detector(side, size), mode, images, targets, xla) for side in SIDES
                }
                timings = compare(contenders, rounds=rounds, min_round_seconds=min_round_seconds)
                rows.append(
                    {
                        "size": size,
                        "batch": count,
                        "mode": mode,
                        "xla": xla,
                        "images_per_second": {
                            side: timings[side].throughput(count) for side in SIDES
                        },
                    }
                )
                keras.backend.clear_session()
    return rows


def markdown(rows):
    lines = [
        f"RetinaNet (keras-hub, P3-P7, 4-conv heads, 80 classes); {platform.processor() or 'CPU'}; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, keras-hub "
        f"{keras_hub.__version__}. Images per second (median of interleaved rounds).",
        "",
        "| step | px | batch | TF | ECA-ResNet50 | plain twin | keras-hub ResNet50 "
        "| ECA / twin | ECA / keras-hub |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        eca, twin, hub = (row["images_per_second"][side] for side in SIDES)
        lines.append(
            f"| {row['mode']} | {row['size']} | {row['batch']} | "
            f"{'XLA' if row['xla'] else 'graph'} | {eca:.2f} | {twin:.2f} | {hub:.2f} | "
            f"{eca / twin:.3f}x | {eca / hub:.3f}x |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[512])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-round-seconds", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 128 px, batch 2")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.batch_sizes, args.rounds, args.min_round_seconds = [128], [2], 1, 0.0
    rows = measure(args.sizes, args.batch_sizes, args.rounds, args.min_round_seconds)
    if args.quick:  # a smoke run publishes nothing
        print(markdown(rows))
        return
    publish("retinanet", {"rows": rows}, markdown(rows), args.update_readme)


if __name__ == "__main__":
    main()
