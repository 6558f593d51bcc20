"""``eca-keras``: the command line, a thin skin over functions a user can import."""

import argparse
import contextlib
import os
import sys
from importlib import resources

BUNDLED_IMAGE = "flower.jpg"


def _weights_argument(value):
    return None if value.lower() == "none" else value


def cmd_models(args):
    """Lists the registered models with parameters, input size and ImageNet weight source."""
    from eca_keras.applications import list_models, model_info
    from eca_keras.applications.weights import WEIGHTS

    rows = [("model", "params", "input", "weights", "top-1")]
    for name in list_models():
        info = model_info(name)
        source = WEIGHTS.get(name)
        rows.append(
            (
                name,
                f"{info.params:,}",
                str(info.default_size),
                source.name if source else "-",
                f"{source.top1:.2f}" if source else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def cmd_predict(args):
    """Classifies images with a registered model and prints the top-5 ImageNet classes."""
    from eca_keras.predict import classify_images

    images = args.images or [str(resources.files("eca_keras").joinpath("data", BUNDLED_IMAGE))]
    if args.weights is None and not args.model.endswith(".keras"):
        print(
            f"note: {args.model} has random weights (--weights none), so these classes are "
            "arbitrary; pass --weights imagenet for the pretrained network.",
            file=sys.stderr,
        )
    results = classify_images(args.model, images, weights=args.weights, top=args.top)
    for path, predictions in results:
        print(path)
        for rank, (wnid, label, score) in enumerate(predictions, start=1):
            print(f"  {rank}. {label:<30} {wnid}  {score:.4f}")
    return 0


def cmd_convert(args):
    """Converts an upstream checkpoint into a Keras ``.weights.h5`` and prints its sha256."""
    from eca_keras.applications.weights import convert_checkpoint

    output, digest, report = convert_checkpoint(args.model, args.checkpoint, args.output)
    print(
        f"converted {report.loaded_tensors} tensors into {report.loaded_layers} layers of "
        f"{args.model}"
    )
    print(f"wrote {output}")
    print(f"sha256 {digest}")
    return 0


def cmd_evaluate(args):
    """Top-1 / top-5 of a model on a dataset's validation split."""
    import json

    from eca_keras.training.evaluate import evaluate_model

    # With --json, stdout carries only the JSON object; the progress bar goes to stderr.
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        result = evaluate_model(
            args.model,
            args.dataset,
            weights=args.weights,
            data_dir=args.data_dir,
            batch_size=args.batch_size,
            limit=args.limit,
            num_classes=args.num_classes,
        )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.model}: top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  "
            f"on {result['n']} images"
        )
    return 0


def cmd_train(args):
    """Trains or fine-tunes with model.fit; re-running the same command resumes."""
    from eca_keras.training import recipes

    config = recipes.load_recipe(args.recipe)
    flags = {
        "model": args.model,
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "model_dir": args.model_dir,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "strategy": args.strategy,
        "tpu": args.tpu,
        "precision": args.precision,
        "jit_compile": args.jit_compile,
        "freeze_backbone": args.freeze_backbone,
        "label_smoothing": args.label_smoothing,
    }
    config.update({key: value for key, value in flags.items() if value is not None})
    if args.weights is not None:
        config["weights"] = _weights_argument(args.weights)
    if args.learning_rate is not None:
        config["learning_rate"]["base"] = args.learning_rate
    config = recipes.apply_overrides(config, args.set)
    if args.logical_cpus:
        from eca_keras.training import distribute

        distribute.configure_logical_cpus(args.logical_cpus)
    from eca_keras.training.train import train

    summary = train(config)
    best = summary["best_val_accuracy"]
    if best is not None:
        print(
            f"done: {summary['epochs_run']} epochs this run, best val_accuracy {best:.4f}; "
            f"run files in {summary['model_dir']}"
        )
    return 0


def cmd_export(args):
    """Exports a SavedModel or a TFLite file, verified against the Keras model."""
    from eca_keras.export import export

    result = export(
        args.output,
        model_dir=args.model_dir,
        model=args.model,
        weights=args.weights,
        format=args.format,
        quantize=args.quantize,
        input_size=args.input_size,
        representative_data=args.representative_data,
        data_dir=args.data_dir,
        io_type=args.io_type,
        batch_size=args.batch_size,
        calibration_images=args.calibration_images,
        verification_images=args.verification_images,
    )
    if result.operators:
        print("ops: " + ", ".join(f"{name} x{count}" for name, count in result.operators.items()))
    print(f"wrote {result.path} ({result.size_bytes / 2**20:.2f} MiB), labels {result.labels_path}")
    return 0


def cmd_benchmark(args):
    """Times models against their plain twins, keras.applications and PyTorch; prints tables."""
    import json

    from eca_keras import benchmark

    settings = benchmark.Settings(
        models=tuple(args.models),
        modes=tuple(args.modes),
        batch_sizes=tuple(args.batch_sizes),
        xla={"both": (True, False), "on": (True,), "off": (False,)}[args.xla],
        size=args.size,
        rounds=args.rounds,
        min_round_seconds=args.min_round_seconds,
        keras_baselines=not args.no_keras_baselines,
        torch=args.torch,
        memory=args.memory,
        threads=args.threads,
        twins=not args.no_twins,
    )
    results = benchmark.run(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(benchmark.markdown(results))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_demo(args):
    """The embedded-default job: build ECA-MobileNetV2, classify the bundled image, no download."""
    args.model, args.weights, args.images, args.top = "eca_mobilenet_v2", None, [], 5
    return cmd_predict(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="eca-keras", description="ECA-Net (Efficient Channel Attention) for Keras 3."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models and their parameter counts")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("predict", help="classify images with a registered model (top-5)")
    p.add_argument("images", nargs="*", help="image files (default: the bundled example image)")
    p.add_argument(
        "--model",
        default="eca_mobilenet_v2",
        help="registered model name, a .keras file from eca-keras train, or an exported "
        "SavedModel directory or .tflite file",
    )
    p.add_argument(
        "--weights",
        type=_weights_argument,
        default="imagenet",
        help="'imagenet', a weights file, or 'none' (random)",
    )
    p.add_argument("--top", type=int, default=5, help="how many classes to print")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "train",
        help="train or fine-tune with model.fit (default: ECA-ResNet18 on the embedded digits)",
        description="Train with a recipe; every key can be overridden. Re-running the same "
        "command (same --model-dir) resumes from the last completed epoch.",
    )
    p.add_argument("--recipe", default="digits", help="a shipped recipe name or a YAML file")
    p.add_argument("--model", help="registered model name, or a .keras file to continue")
    p.add_argument("--weights", help="imagenet, a weights/checkpoint file, or none")
    p.add_argument("--dataset", help="digits | tfds:<name>[/<config>] | <folder> | <TFRecord glob>")
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--model-dir", help="where the run's files go (default runs/<model>-<data>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="the global batch (all replicas)")
    p.add_argument("--learning-rate", type=float, help="base LR per reference batch")
    p.add_argument("--image-size", type=int)
    p.add_argument(
        "--strategy",
        choices=("auto", "default", "one_device", "mirrored", "multi_worker", "tpu"),
    )
    p.add_argument("--tpu", help="TPU name or address (implies --strategy tpu with auto)")
    p.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"))
    p.add_argument("--jit-compile", action="store_true", default=None, help="compile with XLA")
    p.add_argument("--freeze-backbone", action="store_true", default=None)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument(
        "--logical-cpus", type=int, help="split the CPU into N devices (test mirrored training)"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override any recipe key"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="top-1/top-5 of a model on a dataset")
    p.add_argument(
        "--model",
        required=True,
        help="a registered model name, a .keras file, a SavedModel directory or a .tflite file",
    )
    p.add_argument(
        "--weights", type=_weights_argument, default="imagenet", help="for a registered model"
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="digits | tfds:<name>[/<config>] | <folder> (a flat folder is evaluated whole) | "
        "<TFRecord glob>",
    )
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--num-classes", type=int, help="TFRecords: the number of classes")
    p.add_argument("--json", action="store_true", help="print a JSON object (top1, top5, n)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "export",
        help="export a SavedModel or a TFLite file (float32, float16, dynamic, int8), verified",
        description="Export a training run, a .keras file or a registered model. Every "
        "artifact takes uint8 RGB pixels at the model's input size (preprocessing inside) and "
        "returns class probabilities; it is run on held-out images and compared with the Keras "
        "model before it is put in place (float32 <= 1e-4 relative, float16 <= 1e-2, "
        "dynamic/int8 >= 98%% top-1 agreement). TFLite files use builtin ops only.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", help="a run directory of eca-keras train (its best.keras)")
    source.add_argument("--model", help="a .keras file, or a registered model name")
    p.add_argument(
        "--weights",
        type=_weights_argument,
        default="imagenet",
        help="for a registered model: imagenet, a weights file, or none",
    )
    p.add_argument("--format", choices=("saved_model", "tflite"), default="tflite")
    p.add_argument("--quantize", choices=("none", "float16", "dynamic", "int8"), default="none")
    p.add_argument("--input-size", type=int, help="square input size (default: the model's)")
    p.add_argument(
        "--output", help="the file or directory to write (default: <run>/export/<name>...)"
    )
    p.add_argument(
        "--representative-data",
        help="dataset for int8 calibration (train split) and verification (validation split); "
        "default: the run's own dataset",
    )
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument(
        "--io-type", choices=("uint8", "int8"), default="uint8", help="int8: input/output type"
    )
    p.add_argument("--batch-size", type=int, default=1, help="TFLite: the static batch size")
    p.add_argument(
        "--calibration-images", type=int, default=500, help="int8: how many images calibrate"
    )
    p.add_argument(
        "--verification-images", type=int, default=200, help="held-out images the check runs on"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "convert", help="convert an official ECA-Net or timm checkpoint to Keras weights"
    )
    p.add_argument("--model", required=True, help="registered model name, e.g. eca_resnet50")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="upstream .pth/.pth.tar (no torch needed) or .safetensors",
    )
    p.add_argument("--output", required=True, help="the Keras weights file, *.weights.h5")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "benchmark",
        help="throughput against the plain twin, keras.applications and PyTorch; memory",
        description="Each group of sides is timed in this process in interleaved rounds "
        "(median of --rounds); ratios compare sides of the same run.",
    )
    p.add_argument("--models", nargs="+", default=["eca_resnet50"], metavar="NAME")
    p.add_argument("--modes", nargs="+", default=["inference"], choices=("inference", "training"))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8], metavar="N")
    p.add_argument("--xla", choices=("both", "on", "off"), default="both")
    p.add_argument("--size", type=int, help="input size (default: each model's own)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-round-seconds", type=float, default=1.0, metavar="S")
    p.add_argument(
        "--no-keras-baselines", action="store_true", help="skip keras.applications models"
    )
    p.add_argument("--no-twins", action="store_true", help="only the PyTorch rival and/or memory")
    p.add_argument(
        "--torch", action="store_true", help="also time the PyTorch reference (needs torch)"
    )
    p.add_argument(
        "--memory", action="store_true", help="peak memory of a training step (child process)"
    )
    p.add_argument(
        "--threads", type=int, help="threads for TensorFlow and PyTorch (default: every core)"
    )
    p.add_argument("--output", help="write the results as JSON here")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser(
        "demo", help="build ECA-MobileNetV2 and classify the bundled image (no download)"
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    # Before TensorFlow is first imported: keep its C++ start-up chatter out of the output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from eca_keras import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"eca-keras {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
