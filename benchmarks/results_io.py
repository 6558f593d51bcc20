"""Where benchmark scripts put what they measured: ``benchmarks/results/<name>.json`` and
``<name>.md``, and optionally README.md between ``<!-- <name>-table:start/end -->`` markers."""

import json
import os

from eca_keras.files import write_atomically

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
README = os.path.join(ROOT, "README.md")


def publish(name, data, table, update_readme=False):
    """Writes the JSON and the Markdown table, prints the table, and updates README if asked."""
    os.makedirs(RESULTS, exist_ok=True)
    write_atomically(os.path.join(RESULTS, f"{name}.json"), json.dumps(data, indent=2))
    write_atomically(os.path.join(RESULTS, f"{name}.md"), table)
    print(table)
    if update_readme:
        with open(README) as handle:
            text = handle.read()
        begin, end = f"<!-- {name}-table:start -->", f"<!-- {name}-table:end -->"
        start, stop = text.index(begin) + len(begin), text.index(end)
        write_atomically(README, text[:start] + "\n" + table + text[stop:])
