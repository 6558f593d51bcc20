"""Puts a generated table into README.md between `<!-- NAME:start -->` and `<!-- NAME:end -->`."""

import os

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def update_readme(name, table):
    with open(README) as handle:
        text = handle.read()
    begin, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    start, stop = text.index(begin) + len(begin), text.index(end)
    with open(README, "w") as handle:
        handle.write(text[:start] + "\n" + table + text[stop:])
