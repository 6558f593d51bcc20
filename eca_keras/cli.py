"""``eca-keras``: the command line, a thin skin over functions a user can import."""

import argparse
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
    if args.weights is None:
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
    p.add_argument("--model", default="eca_mobilenet_v2", help="registered model name")
    p.add_argument(
        "--weights",
        type=_weights_argument,
        default="imagenet",
        help="'imagenet', a weights file, or 'none' (random)",
    )
    p.add_argument("--top", type=int, default=5, help="how many classes to print")
    p.set_defaults(func=cmd_predict)

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
    except (ValueError, FileNotFoundError) as error:
        print(f"eca-keras {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
