"""The shape of the package: imports only run down the layers, no cycles, no torch at run time,
and the README's map names every module."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "eca_keras"

# Low to high: a module may import modules of its own layer or of lower ones, never higher.
# (The weight loader sits below the constructors: keras.applications' contract is that a
# constructor takes `weights=`, so the constructors load weights, not the other way round.)
LAYERS = [
    (
        "eca_keras",
        "eca_keras.preprocessing",
        "eca_keras.layers",
        "eca_keras.files",
        "eca_keras.lazy",
    ),
    ("eca_keras.applications.registry", "eca_keras.applications.constructors"),
    ("eca_keras.convert", "eca_keras.downloads"),
    ("eca_keras.applications.weights",),
    ("eca_keras.applications", "eca_keras.complexity"),
    ("eca_keras.data", "eca_keras.runs", "eca_keras.artifacts"),
    ("eca_keras.models",),
    (
        "eca_keras.training",
        "eca_keras.evaluate",
        "eca_keras.predict",
        "eca_keras.export",
        "eca_keras.benchmark",
        "eca_keras.hub",
        "eca_keras.tasks",
    ),
    ("eca_keras.cli",),
]
NOT_RUNTIME = ("eca_keras.testing",)
# The benchmark's PyTorch rival (`eca-keras benchmark --torch`, extra [benchmark]) is the one
# runtime use of the test tooling, imported inside the function that needs it.
TOOLING_USERS = ("eca_keras.benchmark",)


def module_names():
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


MODULES = module_names()


def layer_of(module):
    """The layer of the longest prefix of ``module`` named in LAYERS."""
    best, rank = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def imports_of(name, path):
    """Every eca_keras module ``name`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {module for module in found if module in MODULES}


def test_every_module_has_a_layer():
    unplaced = [name for name in MODULES if layer_of(name) is None and not _is_tooling(name)]
    assert not unplaced


def _is_tooling(name):
    return name.startswith(NOT_RUNTIME)


def test_imports_only_run_down_the_layers():
    upward = []
    for name, path in MODULES.items():
        if _is_tooling(name):
            continue
        for imported in imports_of(name, path):
            if _is_tooling(imported):
                assert name.startswith(TOOLING_USERS), f"{name} imports test tooling {imported}"
                continue
            if layer_of(imported) > layer_of(name):
                upward.append(f"{name} (layer {layer_of(name)}) imports {imported}")
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = {name: imports_of(name, path) - {name} for name, path in MODULES.items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for neighbour in sorted(graph[node]):
            if state.get(neighbour) == "open":
                cycles.append(" -> ".join(stack[stack.index(neighbour) :] + [neighbour]))
            elif neighbour not in state:
                visit(neighbour)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_runtime_modules_import_without_torch():
    """Every module outside eca_keras.testing imports in a process where `import torch` fails."""
    runtime = sorted(name for name in MODULES if not _is_tooling(name))
    program = (
        "import importlib, sys\n"
        "sys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
        f"for name in {runtime!r}:\n"
        "    importlib.import_module(name)\n"
        "print('imported', len(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("imported")


def test_listing_models_imports_no_tensorflow():
    program = (
        "import sys\n"
        "from eca_keras import cli\n"
        "cli.build_parser()\n"
        "cli.main(['models'])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "eca_resnet50" in result.stdout


def test_readme_map_names_every_module():
    text = (ROOT / "README.md").read_text()
    house = text.split("### Map of the house", 1)[1].split("\n## ", 1)[0]
    missing = [
        name
        for name in MODULES
        if name != "eca_keras" and f"`{name.removeprefix('eca_keras.')}" not in house
    ]
    assert not missing, f"README's map lacks {missing}"
