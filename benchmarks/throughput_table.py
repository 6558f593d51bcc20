"""Throughput and memory table: every model against its plain twin, keras.applications and the
PyTorch reference, at each model's default input size.

    python benchmarks/throughput_table.py [--rounds 5] [--sweep-rounds 3] [--quick]
                                          [--sweep-models NAME ... | all] [--resume]
                                          [--update-readme]

Runs :func:`eca_keras.benchmark.run` (the code behind ``eca-keras benchmark``) over a plan:

* inference, batch 1 and 8, with and without XLA: ECA-ResNet50 and ECA-MobileNetV2 first, the
  deeper ResNets last (``SWEPT``; ``--sweep-models all``: every registered model), with
  ``--sweep-rounds`` (the deep models' batch-8 calls take seconds each);
* a training step (forward, backward, SGD update) at batch 8 for those two, with and without XLA;
* both against the PyTorch reference in inference (batch 1 and 8; ECA-ResNet50 with and without
  XLA), ECA-ResNet50 also in training (batch 8), same threads;
* peak memory of ECA-ResNet50's training step at batch 8 (ECA, plain twin, keras.applications).

Each plan row is one :class:`eca_keras.benchmark.Settings`; on 2 cores the plan takes half an hour
to an hour, depending on the CPU (XLA compiles of training steps take up to a minute each).

The measured parts are saved after each one (``throughput.partial.json``); after an
interruption ``--resume`` (same options) measures only the parts still missing, and
``--publish-partial`` publishes what was measured. ``--quick`` shrinks the plan to
ECA-MobileNetV2 at 64 px (a smoke run). Writes ``benchmarks/results/throughput.{json,md}``;
``--update-readme`` puts the tables into README.md between its ``throughput-table`` markers.
``benchmarks/accuracy_chart.py`` draws the chart from the JSON.
"""

import argparse
import dataclasses
import json
import os

from results_io import RESULTS, publish

from eca_keras.applications import list_models
from eca_keras.benchmark import Settings, markdown, run

COMPARED = ("eca_resnet50", "eca_mobilenet_v2")  # the paper's two architectures
# The deeper models the issue of ECA's cost tracks (timm's ecaresnet269d among them); ``all`` sweeps
# every registered model (two to three hours on 2 cores: the NFNets at 320-384 px under XLA).
SWEPT = ("eca_resnet101", "eca_resnet152", "ecaresnet101d", "ecaresnet269d", "ecaresnet50d")


def plan(rounds, quick, sweep_rounds=3, sweep_models=None):
    if quick:
        common = dict(size=64, rounds=rounds, min_round_seconds=0.2, batch_sizes=(2,))
        return [
            Settings(models=("eca_mobilenet_v2",), modes=("inference", "training"), **common),
            Settings(
                models=("eca_mobilenet_v2",),
                modes=("inference", "training"),
                torch=True,
                memory=True,
                xla=(False,),
                **common,
            ),
        ]
    if sweep_models == ["all"]:
        sweep_models = list_models()
    others = tuple(name for name in sweep_models or SWEPT if name not in COMPARED)
    return [  # the paper's two architectures first, so that a cut-short run has them
        Settings(models=COMPARED, rounds=rounds),
        Settings(models=("eca_resnet50",), twins=False, torch=True, rounds=rounds),
        Settings(
            models=("eca_mobilenet_v2",), twins=False, torch=True, xla=(False,), rounds=rounds
        ),
        Settings(models=COMPARED, modes=("training",), batch_sizes=(8,), rounds=rounds),
        Settings(
            models=("eca_resnet50",),
            modes=("training",),
            batch_sizes=(8,),
            xla=(False,),
            twins=False,
            torch=True,
            memory=True,
            rounds=rounds,
        ),
        Settings(models=others, rounds=sweep_rounds),
    ]


def merge(parts):
    """One result from the plan's parts (each a run's result, or a merge of earlier parts)."""
    merged = dict(parts[0])
    merged["plan"] = [
        settings for part in parts for settings in part.get("plan", [part["settings"]])
    ]
    for key in ("throughput", "torch", "memory"):
        merged[key] = [row for part in parts for row in part[key]]
    merged["matmul_peak_gflops"] = max(part["matmul_peak_gflops"] for part in parts)
    return merged


def resumed_run(partial, todo):
    """The merged parts an interrupted run measured (its ``.partial.json``), if its plan is the
    start of ``todo``; else an error saying why nothing is kept."""
    with open(partial) as handle:
        done = json.load(handle)
    wanted = [json.loads(json.dumps(dataclasses.asdict(settings))) for settings in todo]
    if done["plan"] != wanted[: len(done["plan"])]:
        raise SystemExit(
            f"--resume: {partial} was measured for another plan (options differ); "
            "run without --resume to start again"
        )
    return done


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep-rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--sweep-models",
        nargs="+",
        default=None,
        help=f"the other models to sweep (default: {' '.join(SWEPT)}; 'all': every registered "
        "model, the NFNets and ecaresnet269d under XLA taking the longest)",
    )
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the parts an interrupted run of the same plan measured; measure the rest",
    )
    parser.add_argument(
        "--publish-partial",
        action="store_true",
        help="publish what an interrupted run measured (its .partial.json) and stop",
    )
    args = parser.parse_args()
    name = "throughput_quick" if args.quick else "throughput"
    parts, partial = [], os.path.join(RESULTS, f"{name}.partial.json")
    if args.publish_partial:
        with open(partial) as handle:
            results = json.load(handle)
        publish(name, results, markdown(results), args.update_readme and not args.quick)
        return
    todo = plan(args.rounds, args.quick, args.sweep_rounds, args.sweep_models)
    if args.resume and os.path.exists(partial):
        done = resumed_run(partial, todo)
        parts, todo = [done], todo[len(done["plan"]) :]  # merge() takes a merged part as a part
        print(f"resuming: {len(todo)} parts of the plan to go", flush=True)
    for settings in todo:
        parts.append(run(settings))
        with open(partial, "w") as handle:  # a crash late in the plan keeps what was measured
            json.dump(merge(parts), handle, indent=1)
    results = merge(parts)
    publish(name, results, markdown(results), args.update_readme and not args.quick)
    os.remove(partial)


if __name__ == "__main__":
    main()
