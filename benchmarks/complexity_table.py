"""Parameters and multiply-accumulates of every registered model and of its plain twin.

    python benchmarks/complexity_table.py [--update-readme]

Trainable parameters (as PyTorch counts them) and MACs per image at each model's default
input size, counted by :func:`eca_keras.complexity.count_macs` (the same count as PyTorch's
FlopCounterMode, see tests/test_complexity.py); the "2^30" column is the unit of the ECA-Net
paper's "FLOPs" table. Writes ``benchmarks/results/complexity.json`` and ``complexity.md``;
``--update-readme`` puts the table into README.md between its ``complexity-table`` markers.
"""

import argparse
import math
import os
import sys

from results_io import publish


def measure():
    import keras

    from eca_keras.applications import get_model, list_models, model_info
    from eca_keras.complexity import count_macs

    rows = []
    for name in list_models():
        size = model_info(name).default_size
        counts = {}
        for attention in (True, False):
            print(f"counting {name} (attention={attention})", file=sys.stderr, flush=True)
            model = get_model(name, weights=None, input_shape=(size, size, 3), attention=attention)
            trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
            counts[attention] = (trainable, count_macs(model))
            del model
            keras.backend.clear_session()
        rows.append(
            {
                "model": name,
                "input_size": size,
                "params": counts[True][0],
                "macs": counts[True][1],
                "plain_params": counts[False][0],
                "plain_macs": counts[False][1],
            }
        )
    return rows


def markdown(rows):
    lines = [
        "| model | input | params | GMACs | MACs / 2^30 | ECA adds: params | ECA adds: MACs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['input_size']} | {row['params']:,} | "
            f"{row['macs'] / 1e9:.3f} | {row['macs'] / 2**30:.2f} | "
            f"{row['params'] - row['plain_params']:,} | {row['macs'] - row['plain_macs']:,} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = measure()
    publish("complexity", rows, markdown(rows), args.update_readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
