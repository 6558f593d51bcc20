"""``eca-keras``: the command line, a thin skin over functions a user can import.

Choices and defaults come from the library's own constants; building the parser (``--help``)
and listing models import neither Keras nor TensorFlow. A user's mistake is one line on stderr
(exit 2 for bad usage, 1 for a failure), never a traceback.
"""

import argparse
import contextlib
import os
import sys
from importlib import resources

BUNDLED_IMAGE = "flower.jpg"
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error in one line (exit 2), not the whole usage text."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _weights_argument(value):
    return None if value.lower() == "none" else value


def _positive_int(value):
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def _positive_float(value, allow_zero=False):
    kind = "a non-negative" if allow_zero else "a positive"
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind} number, got {value!r}") from None
    if not (number >= 0 if allow_zero else number > 0):
        raise argparse.ArgumentTypeError(f"expected {kind} number, got {value}")
    return number


def _non_negative_float(value):
    return _positive_float(value, allow_zero=True)


def _key_value(value):
    key, equals, text = value.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip(), text


# --------------------------------------------------------------------------- commands


def _forward(args, names):
    """``{name: args.name}``: the options a command hands on to the library function."""
    return {name: getattr(args, name) for name in names}


def cmd_models(args):
    """Lists the registered models with parameters, input size and ImageNet weights."""
    from eca_keras.applications import list_models, model_info

    rows = [("model", "params", "input", "weights (imagenet first)", "top-1")]
    for name in list_models():
        info = model_info(name)
        default = info.default_weights
        rows.append(
            (
                name,
                f"{info.params:,}",
                str(info.default_size),
                ", ".join(entry.name for entry in info.weights) or "-",
                f"{default.top1:.2f}" if default else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_predict(args):
    """Classifies images and prints the top classes (or draws detections / masks)."""
    if args.task != "classification":
        return _predict_task(args)
    from eca_keras.predict import classify_images

    images = args.images or [str(resources.files("eca_keras").joinpath("data", BUNDLED_IMAGE))]
    if args.weights is None and _is_registered(args.model):
        print(
            f"note: {args.model} has random weights (--weights none), so these classes are "
            "arbitrary; pass --weights imagenet for the pretrained network.",
            file=sys.stderr,
        )
    results = classify_images(args.model, images, weights=args.weights, top=args.top)
    for path, predictions in results:
        print(path)
        for rank, (class_id, label, score) in enumerate(predictions, start=1):
            print(f"  {rank}. {label:<30} {class_id}  {score:.4f}")
    return 0


def _predict_task(args):
    from eca_keras.tasks.predict import predict_task

    if not args.images:
        raise ValueError(f"predict --task {args.task} needs image files")
    results = predict_task(
        args.task, args.model, args.images, output_dir=args.output, threshold=args.threshold
    )
    for path, found in results:
        print(path)
        for item in found:
            print("  " + "  ".join(str(value) for value in item))
    return 0


def _is_registered(name):
    from eca_keras.applications import registry

    return registry.is_registered(name)


def cmd_convert(args):
    """Converts an upstream checkpoint into a Keras ``.weights.h5`` and prints its sha256."""
    from eca_keras.applications.weights import check_weights_output, convert_checkpoint

    check_weights_output(args.output)
    output, digest, report = convert_checkpoint(args.model, args.checkpoint, args.output)
    print(
        f"converted {report.loaded_tensors} tensors into {report.loaded_layers} layers of "
        f"{args.model}"
    )
    print(f"wrote {output}")
    print(f"sha256 {digest}")
    return 0


def cmd_evaluate(args):
    """Top-1 / top-5 of a model on a dataset."""
    import json

    if args.task != "classification":
        return _evaluate_task(args, json)
    from eca_keras.evaluate import evaluate_model

    # With --json, stdout carries only the JSON object; the progress bar goes to stderr.
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        options = (
            "weights",
            "data_dir",
            "batch_size",
            "limit",
            "num_classes",
            "image_size",
            "skip_bad_images",
        )
        result = evaluate_model(args.model, args.dataset, **_forward(args, options))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.model}: top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  "
            f"on {result['n']} images"
        )
    return 0


def _evaluate_task(args, json):
    from eca_keras.tasks.evaluate import evaluate_task

    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        result = evaluate_task(
            args.task, args.model, args.dataset, images=args.images, batch_size=args.batch_size
        )
    if args.json:
        print(json.dumps(result))
    elif args.task == "detection":
        print(
            f"{args.model}: mAP {result['map']:.4f}  mAP@0.5 {result['map50']:.4f}  "
            f"mAP@0.75 {result['map75']:.4f} (COCOeval) on {result['n']} images"
        )
    else:
        print(
            f"{args.model}: mean IoU {result['mean_iou']:.4f}  pixel accuracy "
            f"{result['pixel_accuracy']:.4f} on {result['n']} images"
        )
    return 0


TRAIN_FLAGS = (
    "model",
    "dataset",
    "data_dir",
    "model_dir",
    "epochs",
    "batch_size",
    "image_size",
    "strategy",
    "tpu",
    "precision",
    "jit_compile",
    "freeze_backbone",
    "label_smoothing",
    "skip_bad_images",
)


def cmd_train(args):
    """Trains or fine-tunes with model.fit; re-running the same command resumes."""
    if args.task != "classification":
        return _train_task(args)
    from eca_keras.training import recipes

    config = recipes.load_recipe(args.recipe)
    flags = _forward(args, TRAIN_FLAGS)
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

    summary = train(config, verbose=1 if sys.stdout.isatty() else 2)
    best = summary["best_val_accuracy"]
    if summary["epochs_run"] == 0:
        print(
            f"done: 0 epochs this run, {summary['model_dir']} had finished its "
            f"{config['epochs']} epochs" + (f"; best val_accuracy {best:.4f}" if best else "")
        )
    elif best is not None:
        print(
            f"done: {summary['epochs_run']} epochs this run, best val_accuracy {best:.4f}; "
            f"run files in {summary['model_dir']}"
        )
    return 0


TASK_FLAGS = (
    "model",
    "dataset",
    "images",
    "validation_images",
    "model_dir",
    "epochs",
    "batch_size",
    "image_size",
    "learning_rate",
    "freeze_backbone",
)
CLASSIFICATION_ONLY = ("strategy", "tpu", "precision", "jit_compile", "label_smoothing")


def _train_task(args):
    from eca_keras.tasks.train import train

    used = [f"--{key.replace('_', '-')}" for key in CLASSIFICATION_ONLY if getattr(args, key)]
    if args.recipe != "digits" or args.logical_cpus:
        used.append("--recipe" if args.recipe != "digits" else "--logical-cpus")
    if used:
        raise ValueError(f"{', '.join(used)} apply to classification only, not --task {args.task}")
    values = {key: getattr(args, key) for key in TASK_FLAGS}
    values["validation"] = args.validation_dataset
    if args.weights is not None:
        values["weights"] = _weights_argument(args.weights)
    summary = train(args.task, values, args.set, verbose=1 if sys.stdout.isatty() else 2)
    best = summary["best"]
    print(
        f"done: {summary['epochs_run']} epochs this run"
        + (f", best {summary['monitor']} {best:.4f}" if best is not None else "")
        + f"; run files in {summary['model_dir']}"
    )
    return 0


def cmd_export(args):
    """Exports a SavedModel or a TFLite file, verified against the Keras model."""
    from eca_keras.export import export

    options = (
        "model_dir", "model", "weights", "format", "quantize", "input_size",
        "representative_data", "data_dir", "io_type", "batch_size", "calibration_images",
        "verification_images", "overwrite",
    )  # fmt: skip
    result = export(args.output, metadata=dict(args.metadata), **_forward(args, options))
    if result.operators:
        print("ops: " + ", ".join(f"{name} x{count}" for name, count in result.operators.items()))
    print(f"wrote {result.path} ({result.size_bytes / 2**20:.2f} MiB), labels {result.labels_path}")
    return 0


def cmd_publish(args):
    """Writes a keras-hub preset (model card, sha256 manifest) and uploads it if asked."""
    from eca_keras.hub.publish import publish

    result = publish(args.model, args.weights, args.output, args.upload, args.overwrite)
    print(f"{result.architecture} preset in {result.path}: {len(result.files)} files, parity "
          f"{result.parity:.1e}")  # fmt: skip
    if result.uploaded:
        print(f"uploaded: {result.uploaded}")
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
        from eca_keras.files import write_atomically

        write_atomically(args.output, json.dumps(results, indent=2))
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_demo(args):
    """The embedded-default job: build ECA-MobileNetV2, classify the bundled image, no download."""
    args.model, args.weights, args.images, args.top = "eca_mobilenet_v2", None, [], 5
    args.task = "classification"
    return cmd_predict(args)


# --------------------------------------------------------------------------- the parser


def build_parser():
    from eca_keras.benchmark.settings import MODES, Settings
    from eca_keras.export.exporter import (
        DEFAULT_CALIBRATION_IMAGES,
        DEFAULT_VERIFICATION_IMAGES,
        FORMATS,
    )
    from eca_keras.export.tflite import INT8_IO_TYPES, QUANTIZATIONS
    from eca_keras.export.verify import describe_bounds
    from eca_keras.tasks.settings import TASKS
    from eca_keras.training.cluster import STRATEGIES
    from eca_keras.training.recipes import PRECISIONS, default_recipe, recipe_names

    parser = _Parser(
        prog="eca-keras", description="ECA-Net (Efficient Channel Attention) for Keras 3."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models, their parameters and weights")
    p.set_defaults(func=cmd_models)

    model_help = (
        "a registered model name, a .keras file or run directory of eca-keras train, a preset "
        "(hf://ORG/NAME, kaggle://..., or its folder), or an exported SavedModel directory, "
        ".tflite or .onnx file"
    )
    p = sub.add_parser("predict", help="classify images (top classes)")
    p.add_argument("images", nargs="*", help="image files (default: the bundled example image)")
    p.add_argument("--model", default="eca_mobilenet_v2", help=model_help)
    p.add_argument(
        "--weights",
        type=_weights_argument,
        default="imagenet",
        help="for a registered model: imagenet, a weights tag or file, a preset (hf://...), or "
        "none (random)",
    )
    p.add_argument("--top", type=_positive_int, default=5, help="how many classes to print")
    _task_argument(p, TASKS)
    p.add_argument("--output", default=".", help="detection/segmentation: folder of the pictures")
    p.add_argument(
        "--threshold",
        type=_non_negative_float,
        default=0.3,
        help="detection: the lowest score drawn",
    )
    p.set_defaults(func=cmd_predict)

    recipe = default_recipe()
    p = sub.add_parser(
        "train",
        help=f"train or fine-tune with model.fit (default: {recipe['model']} on the embedded "
        f"{recipe['dataset']})",
        description="Train with a recipe; every key can be overridden. With no arguments: "
        f"{recipe['model']} on the embedded {recipe['dataset']} (the digits recipe). "
        "Re-running the same command (same --model-dir) resumes from the last completed epoch.",
    )
    p.add_argument(
        "--recipe",
        default="digits",
        help=f"a shipped recipe ({', '.join(recipe_names())}) or a YAML file",
    )
    p.add_argument(
        "--model",
        help="registered model name, or a .keras file to continue (default: the recipe's; "
        f"digits: {recipe['model']})",
    )
    p.add_argument("--weights", help="imagenet, a weights tag or file, or none")
    p.add_argument("--dataset", help="digits | tfds:<name>[/<config>] | <folder> | <TFRecord glob>")
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--model-dir", help="where the run's files go (default runs/<model>-<data>)")
    p.add_argument("--epochs", type=_positive_int, help="how many epochs in all")
    p.add_argument("--batch-size", type=_positive_int, help="the global batch (all replicas)")
    p.add_argument("--learning-rate", type=_positive_float, help="base LR per reference batch")
    p.add_argument("--image-size", type=_positive_int, help="square training input size")
    p.add_argument("--strategy", choices=STRATEGIES, help="tf.distribute strategy (auto)")
    p.add_argument("--tpu", help="TPU name or address (implies --strategy tpu with auto)")
    p.add_argument("--precision", choices=PRECISIONS, help="float32 or a mixed policy")
    p.add_argument("--jit-compile", action="store_true", default=None, help="compile with XLA")
    p.add_argument(
        "--freeze-backbone",
        action="store_true",
        default=None,
        help="train the new head only (needs pretrained --weights)",
    )
    p.add_argument("--label-smoothing", type=float, help="in [0, 1)")
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        default=None,
        help="image folders: decode every file first and leave out those that fail (a warning "
        "counts and names them) instead of stopping at the first",
    )
    p.add_argument(
        "--logical-cpus", type=_positive_int, help="split the CPU into N devices (try mirrored)"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override any recipe key"
    )
    _task_argument(p, TASKS)
    p.add_argument("--images", help="detection/segmentation: the COCO file's image folder")
    p.add_argument(
        "--validation-dataset", help="detection/segmentation: a COCO file to validate on"
    )
    p.add_argument("--validation-images", help="the validation file's image folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="top-1/top-5 of a model on a dataset")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument(
        "--weights",
        type=_weights_argument,
        default="imagenet",
        help="for a registered model: imagenet, a weights tag or file, or none",
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="digits | tfds:<name>[/<config>] | <folder> (a flat folder is evaluated whole) | "
        "<TFRecord glob>",
    )
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="images per batch")
    p.add_argument("--limit", type=_positive_int, help="evaluate only the first N images")
    p.add_argument("--num-classes", type=_positive_int, help="TFRecords: the number of classes")
    p.add_argument(
        "--image-size",
        type=_positive_int,
        help="evaluate a Keras model at this test size (default: its weights' own)",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="image folders: decode every file first and leave out those that fail (a warning "
        "counts and names them) instead of stopping at the first",
    )
    p.add_argument("--json", action="store_true", help="print a JSON object (top1, top5, n)")
    _task_argument(p, TASKS)
    p.add_argument("--images", help="detection/segmentation: the COCO file's image folder")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "export",
        help="export a SavedModel, a TFLite (float32, float16, dynamic, int8) or an ONNX file, "
        "verified",
        description="Export a training run, a .keras file or a registered model. Every "
        "artifact takes uint8 RGB pixels at the model's input size (preprocessing inside) and "
        "returns class probabilities; it is run on held-out images and compared with the Keras "
        f"model before it is put in place ({describe_bounds()}). TFLite files use builtin ops "
        "only, carry metadata (labels, normalisation, evaluation transform) and are run by "
        "MediaPipe's ImageClassifier too; their GPU-delegate compatibility is reported. ONNX and "
        "the MediaPipe check need pip install 'eca-keras[deploy]'.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", help="a run directory of eca-keras train (its best.keras)")
    source.add_argument("--model", help="a .keras file, or a registered model name")
    p.add_argument(
        "--weights",
        type=_weights_argument,
        default="imagenet",
        help="for a registered model: imagenet, a weights tag or file, or none",
    )
    p.add_argument("--format", choices=FORMATS, default="tflite", help="the artifact's format")
    p.add_argument("--quantize", choices=QUANTIZATIONS, default="none", help="TFLite only")
    p.add_argument(
        "--metadata",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TFLite metadata: name, description, version, author or license",
    )
    p.add_argument("--input-size", type=_positive_int, help="square input size (default: model's)")
    p.add_argument(
        "--output", help="the file or directory to write (default: <run>/export/<name>...)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export at --output")
    p.add_argument(
        "--representative-data",
        help="dataset for int8 calibration (train split) and verification (validation split); "
        "default: the run's own dataset",
    )
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument(
        "--io-type", choices=INT8_IO_TYPES, default="uint8", help="int8: input/output type"
    )
    p.add_argument("--batch-size", type=_positive_int, default=1, help="TFLite: the static batch")
    p.add_argument(
        "--calibration-images",
        type=_positive_int,
        default=DEFAULT_CALIBRATION_IMAGES,
        help="int8: how many images calibrate",
    )
    p.add_argument(
        "--verification-images",
        type=_positive_int,
        default=DEFAULT_VERIFICATION_IMAGES,
        help="held-out images the check runs on",
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
        "publish",
        help="write a keras-hub preset of any weights (model card, sha256 manifest), and upload",
        description="Builds the keras-hub classifier of a model with the given weights, saves it "
        "as a preset folder with a model card (README.md), eca_keras.json and SHA256SUMS, checks "
        "that it reloads to the same logits, and uploads it with --upload. Load it with "
        "keras_hub.models.ImageClassifier.from_preset(FOLDER | hf://... | kaggle://...) after "
        "`import eca_keras`, or with --weights/--model of any command.",
    )
    p.add_argument("--model", help="registered model name (optional with a run directory)")
    p.add_argument(
        "--weights",
        required=True,
        help="imagenet, a weights tag, an upstream checkpoint, a .weights.h5, or a run directory "
        "of eca-keras train",
    )
    p.add_argument("--output", required=True, help="the preset folder to write")
    p.add_argument("--upload", help="hf://ORG/NAME or kaggle://OWNER/MODEL/keras/VARIATION")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier preset")
    p.set_defaults(func=cmd_publish)

    defaults = Settings()
    p = sub.add_parser(
        "benchmark",
        help="throughput against the plain twin, keras.applications and PyTorch; memory",
        description="Each group of sides is timed in this process in interleaved rounds "
        "(median of --rounds); ratios compare sides of the same run.",
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=list(defaults.models),
        metavar="NAME",
        help=f"registered models to time (default: {' '.join(defaults.models)})",
    )
    p.add_argument(
        "--modes",
        nargs="+",
        default=list(defaults.modes),
        choices=MODES,
        help=f"inference and/or training steps (default: {' '.join(defaults.modes)})",
    )
    p.add_argument(
        "--batch-sizes",
        nargs="+",
        type=_positive_int,
        default=list(defaults.batch_sizes),
        help=f"batch sizes (default: {' '.join(map(str, defaults.batch_sizes))})",
    )
    p.add_argument("--xla", choices=("both", "on", "off"), default="both", help="XLA or graph")
    p.add_argument("--size", type=_positive_int, help="input size (default: each model's own)")
    p.add_argument(
        "--rounds",
        type=_positive_int,
        default=defaults.rounds,
        help=f"interleaved rounds; the median counts (default: {defaults.rounds})",
    )
    p.add_argument(
        "--min-round-seconds",
        type=_non_negative_float,
        default=defaults.min_round_seconds,
        help="each contender runs at least this long per round (default: "
        f"{defaults.min_round_seconds:g})",
    )
    p.add_argument(
        "--no-keras-baselines", action="store_true", help="skip keras.applications models"
    )
    p.add_argument("--no-twins", action="store_true", help="only the PyTorch rival and/or memory")
    p.add_argument("--torch", action="store_true", help="also time the PyTorch reference")
    p.add_argument("--memory", action="store_true", help="peak memory of a training step")
    p.add_argument("--threads", type=_positive_int, help="threads (default: every core)")
    p.add_argument("--output", help="write the results as JSON here")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser(
        "demo", help="build ECA-MobileNetV2 and classify the bundled image (no download)"
    )
    p.set_defaults(func=cmd_demo)
    return parser


def _task_argument(parser, tasks):
    parser.add_argument(
        "--task",
        choices=("classification", *tasks),
        default="classification",
        help="detection (RetinaNet) and segmentation (DeepLabV3) on an ECA backbone; their "
        "--dataset is digits (embedded scenes) or a COCO instances JSON",
    )


def _import_tensorflow_quietly():
    """Imports TensorFlow without its C++ start-up chatter (CUDA probing on a CPU-only machine,
    oneDNN notices): those lines are written before TensorFlow's log level applies
    (tensorflow#100442), so the process' stderr is muted for the import and the probe of the
    physical devices (where "failed call to cuInit" comes from) alone. An import error still
    surfaces, after stderr is back. ``TF_CPP_MIN_LOG_LEVEL`` (default 3 here) silences the
    rest; set it lower to see TensorFlow's own log."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow

        tensorflow.config.list_physical_devices()  # logical devices stay configurable
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


NEEDS_NO_TENSORFLOW = ("models",)


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv=None):
    import warnings

    formatter, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = formatter


def _main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from eca_keras import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command not in NEEDS_NO_TENSORFLOW:
            _import_tensorflow_quietly()
        return args.func(args)
    except KeyboardInterrupt:
        resume = " re-run the same command to resume" if args.command == "train" else ""
        print(
            f"eca-keras {args.command}: interrupted;{resume or ' nothing was written'}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (ValueError, OSError, RuntimeError, ImportError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"eca-keras {args.command}: error: {message}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
