"""Chart: published ImageNet top-1 of every model with weights, against parameters and against
measured inference throughput.

    python benchmarks/accuracy_chart.py [--batch 8]

Top-1 and parameter counts come from the weight registry and the model table; throughput from
``benchmarks/results/throughput.json`` (run ``throughput_table.py`` first): the faster of TF
with and without XLA at ``--batch``, at each model's default input size. Needs matplotlib
(``pip install 'eca_keras[benchmark]'``). Writes ``benchmarks/results/accuracy.png``.
"""

import argparse
import json
import os

from results_io import RESULTS

from eca_keras.applications import list_models, model_info
from eca_keras.applications.weights import WEIGHTS


def points(results, batch):
    """``[(name, params, images_per_second, top1)]`` for every model with published weights."""
    speed = {}
    for row in results["throughput"]:
        if row["mode"] == "inference" and row["batch"] == batch:
            rate = row["images_per_second"]["eca"]
            speed[row["model"]] = max(speed.get(row["model"], 0.0), rate)
    return [
        (name, model_info(name).params, speed.get(name), WEIGHTS[name].top1)
        for name in list_models()
        if name in WEIGHTS
    ]


def draw(rows, machine, batch, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (by_params, by_speed) = pyplot.subplots(1, 2, figsize=(12, 5), sharey=True)
    for name, params, rate, top1 in rows:
        colour = "tab:blue" if model_info(name).origin == "official" else "tab:orange"
        by_params.scatter(params / 1e6, top1, color=colour)
        by_params.annotate(
            name, (params / 1e6, top1), fontsize=7, xytext=(4, 2), textcoords="offset points"
        )
        if rate:
            by_speed.scatter(rate, top1, color=colour)
            by_speed.annotate(
                name, (rate, top1), fontsize=7, xytext=(4, 2), textcoords="offset points"
            )
    by_params.set_xlabel("parameters (millions)")
    by_params.set_ylabel("ImageNet top-1 (%, published)")
    by_speed.set_xscale("log")
    by_speed.set_xlabel(
        f"inference images/s (batch {batch}, {machine['threads']} CPU threads, log scale)"
    )
    for axes in (by_params, by_speed):
        axes.grid(alpha=0.3)
    by_params.scatter([], [], color="tab:blue", label="official ECA-Net weights")
    by_params.scatter([], [], color="tab:orange", label="timm weights")
    by_params.legend(loc="lower right")
    figure.suptitle("eca_keras models: accuracy against size and CPU speed")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--results", default=os.path.join(RESULTS, "throughput.json"))
    parser.add_argument("--output", default=os.path.join(RESULTS, "accuracy.png"))
    args = parser.parse_args()
    with open(args.results) as handle:
        results = json.load(handle)
    draw(points(results, args.batch), results["machine"], args.batch, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
