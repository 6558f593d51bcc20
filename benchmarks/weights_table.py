"""The README's weights table, from the registry: every registered checkpoint, where it comes from,
its preset name, and the published accuracy at its own size and at timm's test size.

    python benchmarks/weights_table.py [--update-readme]

Writes ``benchmarks/results/weights.json`` and ``weights.md``; ``--update-readme`` puts the table
into README.md between its ``weights-table`` markers (tests/test_readme.py checks it matches).
"""

import argparse
import sys

from results_io import publish


def rows():
    from eca_keras.applications import list_models, model_info
    from eca_keras.hub.presets import preset_name

    table = []
    for name in list_models():
        info = model_info(name)
        for entry in info.weights:
            own = entry.results[0]
            test = entry.result_at(entry.test_size) if entry.test_size else None
            table.append(
                {
                    "model": name,
                    "weights": entry.name,
                    "file": entry.file_name,
                    "source": "official release, Google Drive"
                    if entry.format == "official_pth"
                    else "timm, Hugging Face hub",
                    "preset": preset_name(entry),
                    "own": [own.size, own.crop_pct, own.top1, own.top5],
                    "test": [test.size, test.crop_pct, test.top1, test.top5] if test else None,
                    "interpolation": entry.eval.interpolation,
                    "params": info.params,
                }
            )
    return table


def _result(result):
    if result is None:
        return "-"
    size, crop, top1, top5 = result
    top5 = "-" if top5 is None else f"{top5:.2f}"
    return f"{top1:.2f} / {top5} @ {size} ({crop})"


def markdown(table):
    lines = [
        "| model | weights (`weights=`) | preset name | source (file) "
        "| top-1 / top-5 @ size (crop) | at timm's test size | resize | params |",
        "|---|---|---|---|---|---|---|---:|",
    ]
    for row in table:
        tag = row["weights"].split(".", 1)[1]
        weights = "`imagenet`" if row is _first(table, row["model"]) else f"`{tag}`"
        lines.append(
            f"| `{row['model']}` | `{row['weights']}`: {weights} | `{row['preset']}` | "
            f"{row['source']} (`{row['file']}`) | {_result(row['own'])} | {_result(row['test'])} "
            f"| {row['interpolation']} | {row['params']:,} |"
        )
    return "\n".join(lines) + "\n"


def _first(table, model):
    return next(row for row in table if row["model"] == model)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    table = rows()
    publish("weights", table, markdown(table), args.update_readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
