"""Export table: TFLite size, LiteRT/XNNPACK and ONNX Runtime latency at 1 and 2 threads, GPU
delegate compatibility, ops, int8 agreement.

    python benchmarks/export_table.py [--size 224] [--rounds 5] [--agreement-run RUN ...]
                                      [--update-readme]

For ECA-MobileNetV2, ECA-ResNet50 and their plain twins (``attention=False``), at ``--size``
with a 1000-class head, each quantization is converted with the library's own conversion
(:func:`eca_keras.export.tflite.write_tflite`), and the float32 model is also written as ONNX
(:func:`eca_keras.export.onnx_export.write_onnx`, the extra ``eca-keras[deploy]``). File size and
latency do not depend on the weights' values, so random weights serve (no download); int8
calibration uses the embedded digits. Latency: one LiteRT interpreter or ONNX Runtime session per
file and thread count, a warm-up, then ``--rounds`` rounds that visit every file in turn (so
drifting machine load hits all alike); the median of the rounds' means is reported. The GPU
column is :func:`eca_keras.export.gpu.gpu_report` of each file: "all" where the TFLite GPU
delegate runs every op, else the ops it leaves on the CPU.

Top-1 agreement of int8 with Keras needs a trained model: ``--agreement-run`` exports runs of
``eca-keras train`` through :func:`eca_keras.export.export`, whose verification measures it on
the run's held-out images.

Writes ``benchmarks/results/export.json`` and ``export.md``; ``--update-readme`` puts the table
into README.md between its ``export-table`` markers.
"""

import argparse
import os
import sys
import tempfile

from results_io import publish

MODELS = (  # (row label, registered name, attention)
    ("ECA-MobileNetV2", "eca_mobilenet_v2", True),
    ("MobileNetV2 (plain twin)", "eca_mobilenet_v2", False),
    ("ECA-ResNet50", "eca_resnet50", True),
    ("ResNet50 (plain twin)", "eca_resnet50", False),
)
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
THREADS = (1, 2)


def build_files(size, work, calibration):
    """Converts every model in every quantization with the exporter's own conversion, and the
    float32 model to ONNX; returns ``[(label, quantize, path, ops, onnx path or None)]``."""
    from eca_keras.applications import get_model
    from eca_keras.export.onnx_export import write_onnx
    from eca_keras.export.tflite import write_tflite
    from eca_keras.preprocessing import IMAGENET_MEAN, IMAGENET_STD

    files = []
    for label, name, attention in MODELS:
        model = get_model(name, weights=None, input_shape=(size, size, 3), attention=attention)
        onnx_path = os.path.join(work, f"{name}_{attention}.onnx")
        print(f"converting {label} (onnx)", file=sys.stderr, flush=True)
        write_onnx(model, onnx_path, size, True, IMAGENET_MEAN, IMAGENET_STD)
        for quantize in QUANTIZATIONS:
            print(f"converting {label} ({quantize})", file=sys.stderr, flush=True)
            path = os.path.join(work, f"{name}_{attention}_{quantize}.tflite")
            operators = write_tflite(model, path, size, quantize, calibration)
            files.append(
                (label, quantize, path, operators, onnx_path if quantize == "none" else None)
            )
    return files


def calibration_images(size, count=100):
    from eca_keras.data.classification import load_splits
    from eca_keras.preprocessing import EvalConfig, eval_pixels

    splits = load_splits("digits")
    config = EvalConfig(size, crop_pct=1.0)
    pixels = splits.train.take(count).map(lambda image, _: eval_pixels(image, config))
    return [image.numpy().astype("float32") for image in pixels]


def measure_latency(files, size, rounds):
    """``{(path, threads): median milliseconds}`` of every TFLite and ONNX file, timed side by
    side by the benchmark harness (:func:`eca_keras.benchmark.timing.compare`: interleaved
    rounds, medians)."""
    import numpy as np

    from eca_keras.artifacts import ONNXArtifact, TFLiteArtifact
    from eca_keras.benchmark.timing import compare

    runners = {}
    paths = [(path, TFLiteArtifact) for _, _, path, _, _ in files]
    paths += [(onnx_path, ONNXArtifact) for *_, onnx_path in files if onnx_path]
    for path, runtime in paths:
        for threads in THREADS:
            artifact = runtime(path, num_threads=threads)
            dtype = artifact.input_dtype
            batch = np.random.default_rng(0).integers(0, 128, (1, size, size, 3)).astype(dtype)
            runners[(path, threads)] = lambda a=artifact, b=batch: a.invoke(b)
    print(f"timing {len(runners)} files, {rounds} interleaved rounds", file=sys.stderr, flush=True)
    # warmup_calls=3: XNNPACK packs its weights on first use.
    timings = compare(runners, rounds, min_round_seconds=0.5, warmup_calls=3)
    return {key: 1000 * timing.seconds for key, timing in timings.items()}


def agreement_rows(runs):
    """int8 exports of training runs, verified by the library: ``[(label, measured)]``."""
    import yaml

    from eca_keras.export import export

    rows = []
    for run in runs:
        with open(os.path.join(run, "config.yaml")) as handle:
            config = yaml.safe_load(handle)
        twin = "" if config.get("attention", True) else " (plain twin)"
        label = f"{config['model']}{twin} on {config['dataset']}"
        with tempfile.TemporaryDirectory() as work:
            result = export(os.path.join(work, "int8.tflite"), model_dir=run, quantize="int8")
            rows.append((label, result.verification))
    return rows


def op_summary(operators):
    return ", ".join(f"{name} {count}" for name, count in operators.items())


def gpu_summary(report):
    """ "all", or the ops the GPU delegate would leave on the CPU."""
    if report["fully_compatible"]:
        return "all"
    ops = sorted({entry["op"] for entry in report["incompatible"]} | set(report["not_checked"]))
    return "CPU: " + ", ".join(ops)


def markdown(records, agreement, size, machine):
    lines = [
        f"TFLite and ONNX at {size}x{size}, batch 1, 1000 classes, on {machine}: LiteRT "
        "interpreter with XNNPACK, and ONNX Runtime (CPU) for the float32 ONNX export; latency is "
        "the median of interleaved rounds (ms). GPU: the ops the TFLite GPU delegate runs.",
        "",
        "| model | quantization | size (MiB) | LiteRT 1 thread (ms) | LiteRT 2 threads (ms) | "
        "ONNX Runtime 1 thread (ms) | ONNX Runtime 2 threads (ms) | GPU delegate | ops |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for record in records:
        onnx = record.get("onnx_latency_ms")
        onnx_cells = f"{onnx['1']:.1f} | {onnx['2']:.1f}" if onnx else "- | -"
        lines.append(
            f"| {record['model']} | {record['quantize']} | {record['size_mib']:.2f} | "
            f"{record['latency_ms']['1']:.1f} | {record['latency_ms']['2']:.1f} | {onnx_cells} | "
            f"{gpu_summary(record['gpu_delegate'])} | {op_summary(record['operators'])} |"
        )
    if agreement:
        lines += ["", "| run (int8 export) | top-1 agreement with Keras | held-out images |"]
        lines.append("|---|---:|---:|")
        for label, measured in agreement:
            lines.append(
                f"| {label} | {100 * measured['top1_agreement']:.2f}% | {measured['images']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agreement-run", action="append", default=[], metavar="RUN")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import platform

    machine = f"{os.cpu_count()} CPU cores ({platform.machine()})"
    from eca_keras.export.gpu import gpu_report

    with tempfile.TemporaryDirectory() as work:
        files = build_files(args.size, work, calibration_images(args.size))
        latency = measure_latency(files, args.size, args.rounds)
        records = []
        for label, quantize, path, operators, onnx_path in files:
            with open(path, "rb") as handle:
                report = gpu_report(handle.read())
            record = {
                "model": label,
                "quantize": quantize,
                "size_mib": os.path.getsize(path) / 2**20,
                "latency_ms": {str(t): latency[(path, t)] for t in THREADS},
                "gpu_delegate": report,
                "operators": operators,
            }
            if onnx_path:
                record["onnx_size_mib"] = os.path.getsize(onnx_path) / 2**20
                record["onnx_latency_ms"] = {str(t): latency[(onnx_path, t)] for t in THREADS}
            records.append(record)
    agreement = agreement_rows(args.agreement_run)
    data = {
        "size": args.size,
        "machine": machine,
        "records": records,
        "agreement": [{"run": label, **measured} for label, measured in agreement],
    }
    publish("export", data, markdown(records, agreement, args.size, machine), args.update_readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
